-- The masking bypass corpus's database (tests/integration/masking.sh loads it as the
-- superuser into a fresh database before every pass). public.people holds known secrets:
-- every string of tests/masking/secrets.txt is stored here, and none of them may ever reach a
-- client of the "masked" identity. Salaries are in cents (eight digits, so that they cannot
-- turn up by chance inside a hash, a process id or a cancel key). The token column is not
-- masked by any rule: its values are not secrets (the corpus uses one to see that an unmasked
-- column still comes through). public.orders is clean, public.sink empty (the copy-out
-- attempts aim at it), shadow.people is a same-named view for search_path tricks.
CREATE TABLE public.people (
	id int PRIMARY KEY,
	name text,
	ssn text UNIQUE,
	email text,
	card text,
	phone text,
	salary int,
	notes text,
	token uuid
);

INSERT INTO public.people VALUES
(1, 'Alice Keller', '078-05-1120', 'alice.k9@northwind.test', '4539 1488 0343 6467',
 '+14155550187', 91827364,
 'Onboarded in the spring. Session token eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZS1rOSIsInJvbGUiOiJhZG1pbiIsImlhdCI6MTcwMDAwMDAwMH0.c92P2-zHd3OC2pYwL82DeaGdyy8Yck0kF4nP47GiCpg kept for the audit.',
 'b64ce422-8c38-4b29-98f1-35d25f557203'),
(2, 'Bob Marsh', '219-09-9998', 'bob_77x@harbor.test', '5425-2334-3010-9903',
 '+442079460958', 73645182,
 'AWS key AKIAZDOC9IS0J8HT9LGM for the billing bucket.',
 '9e7769b1-0f42-45b4-907a-70c31012f037'),
(3, 'Carol Nguyen', '457-55-5462', 'carol+vault@lumen.test', '371449635398431',
 '+4930901820', 58273619,
 'The CI runner uses ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d until rotation.',
 '881ed162-ae2e-4154-bf15-052434b9b5df'),
(4, 'Dave Okafor', '536-22-8741', 'dave.q.42@quarry.test', '6011000990139424',
 '+61291234567', 64738291,
 'Deploy key follows.
-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC7pgWaRdTmQx4K
+2X2c6e9naYonwPUhxAPCTDhPZkHx3ZTcJfXMoQ7o0t/AakVdadHaP+N/u7XFbVB
UMI6g0kHEZDEG2Yb2EpiEfUE2K8ANjXt6Q14YPq1ZWsSkKEyx6xFVhZPVQP2aMLs
HiI/tBkCD3fMfC2ujzBygjD8u8Qha6RiHWVr/TYARd34+c2XTf/iBTUvZP7amqST
-----END PRIVATE KEY-----
Old card on file 4485 2217 6439 0017.',
 '7731af10-506b-42ef-86f8-77186d76b07e'),
(5, 'Erin Vasquez', '601-84-3297', 'erin-zx3@delta.test', '4916 3385 0608 2832',
 '+819012345678', 82736451,
 'Private mail erin.backup-77@proton.test, old SSN form 287-41-5560; ask before sharing.',
 '5c90a958-7403-4430-ac66-a78795e761d1');

CREATE TABLE public.orders (id int PRIMARY KEY, person_id int, amount numeric(10, 2));
INSERT INTO public.orders VALUES
(1, 1, 1250.75), (2, 1, 88.40), (3, 2, 4321.09), (4, 3, 17.00), (5, 5, 640.50);

CREATE TABLE public.sink (t text);

CREATE VIEW public.people_v AS SELECT * FROM public.people;

-- the same name and columns as public.people, name and ssn swapped: a statement judged against
-- public.people that the server runs against this view shows ssn as the unmasked name
CREATE SCHEMA shadow;
CREATE VIEW shadow.people AS
	SELECT id, ssn AS name, name AS ssn, email, card, phone, salary, notes, token FROM public.people;

CREATE FUNCTION public.leak(text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	RAISE NOTICE 'leak: %', $1;
	RETURN $1;
END
$$;

-- pg_stats and pg_statistic hold the values (histograms): the catalog views must be refused
ANALYZE public.people;
ANALYZE public.orders;
