/* pgwardctl audit: verify the trail's chain over its files (audit_verify.h), with --key its
 * signed checkpoints too; print its records readably (tail, with -f to follow it across
 * rotations); make a checkpoint key (keygen). A problem verify finds is its result, not an
 * error: "FAILED at record N (FILE:LINE): why" (or {"ok": false, ...}) and exit 1. Values an agent
 * or a client controls (statement text, comm, exe, names) are printed escaped as pw_logq does, so
 * that a record can neither move the terminal nor pass for another line or field. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "pgward/audit_verify.h"
#include "pgward/ctl.h"
#include "pgward/ctl_client.h" /* pw_ctl_put_str */
#include "pgward/log.h"

#define TAIL_MAX_N    100000
#define TEXT_CAP      212                  /* a statement's text: about 200 bytes of it */
#define VALUE_CAP     512                  /* any other value */
#define LINE_MAX_SIZE (512u * 1024 * 1024) /* a longer "line" is no record of ours */
#define POLL_NS       200000000L

static int do_verify(int argc, char **argv);
static int do_tail(int argc, char **argv);
static int do_keygen(int argc, char **argv);

static const struct pw_ctl_cmd audit_cmds[] = {
    {"verify", do_verify, "[--partial] [--key PUBKEY.pem] FILE...",
     "verify the trail's hash chain over its files (the current one and the rotated\n"
     "    FILE.<seq> ones, in any order): exit 1 at the first edited, deleted, inserted,\n"
     "    reordered or cut record; --partial: the earliest files are gone, start anywhere;\n"
     "    --key: every checkpoint must be signed by this public key, and there must be one"},
    {"tail", do_tail, "[-f] [-n N] [--session ID] [--identity NAME] [--type T[,T...]] FILE",
     "print the last N records (10) one a line, or as stored with -j; -f: go on as the\n"
     "    file grows and is rotated, until interrupted; the filters all hold"},
    {"keygen", do_keygen, "--out FILE",
     "make an Ed25519 key for signed checkpoints: the private key into FILE (0600, never\n"
     "    over a file), its public key (for verify --key) on stdout"},
    {NULL, NULL, NULL, NULL}};

int pw_ctl_audit(int argc, char **argv)
{
	return pw_ctl_run_table(audit_cmds, "audit", argc, argv);
}

/* "pgwardctl audit NAME help" (or -h, --help): that command's usage, on stdout */
static bool cmd_help(const char *name, int argc, char **argv)
{
	if (argc < 1 ||
	    (strcmp(argv[0], "help") && strcmp(argv[0], "-h") && strcmp(argv[0], "--help")))
		return false;
	for (const struct pw_ctl_cmd *c = audit_cmds; c->name; c++)
		if (strcmp(c->name, name) == 0)
			printf("pgwardctl audit %s %s\n    %s\n", c->name, c->args, c->what);
	return true;
}

/* getopt_long over a command's arguments (it wants a program name first): av is argv behind
 * one slot; the caller frees it. */
static char **getopt_argv(const char *name, int argc, char **argv)
{
	char **av = calloc((size_t)argc + 2, sizeof(char *));
	if (!av)
		return NULL;
	av[0] = (char *)name;
	memcpy(av + 1, argv, sizeof(char *) * (size_t)argc);
	optind = 1;
	opterr = 0;
	return av;
}

/* ---- verify ---- */

/* What the checkpoints say: how many, signed by whom, and what no signature covers. */
static void checkpoints_plain(const struct pw_audit_verify *r)
{
	unsigned long long n = r->checkpoints, last = r->last_checkpoint, after = r->uncovered;
	if (!n) {
		printf("no checkpoint: no record is signed\n");
		return;
	}
	printf("%llu checkpoint%s, the last at record %llu, %s; ", n, n == 1 ? "" : "s", last,
	       r->keyed ? "signed by this key" : "signatures not checked (no --key)");
	if (after)
		printf("%llu record%s after it not covered by a signature\n", after,
		       after == 1 ? "" : "s");
	else
		printf("every record is covered\n");
}

static void verify_plain(const struct pw_audit_verify *r, bool partial)
{
	unsigned long long first = r->first_seq, last = r->last_seq;
	if (r->ok) {
		printf("ok: %d file%s, records %llu..%llu%s, last hash %s, %s\n", r->files,
		       r->files == 1 ? "" : "s", first, last,
		       partial ? " (--partial: the first is taken as the anchor)" : "",
		       r->last_hash,
		       r->stopped ? "ends with audit_stop (a clean stop)"
		                  : "no audit_stop at its end (pgwardd running, or killed)");
		checkpoints_plain(r);
		if (r->keyed)
			printf("key_id %s\n", r->key_id);
		return;
	}
	char where[64] = "";
	if (r->seq)
		snprintf(where, sizeof(where), " at record %llu", (unsigned long long)r->seq);
	if (r->file)
		printf("FAILED%s (%s:%llu): %s\n", where, r->file, (unsigned long long)r->line,
		       r->why);
	else
		printf("FAILED%s: %s\n", where, r->why);
	if (r->records)
		printf("records %llu..%llu before it chain correctly\n", first, last);
}

static void verify_json(const struct pw_audit_verify *r)
{
	json_t *j = json_object();
	json_object_set_new(j, "ok", json_boolean(r->ok));
	if (r->ok) {
		json_object_set_new(j, "files", json_integer(r->files));
		json_object_set_new(j, "records", json_integer((json_int_t)r->records));
		json_object_set_new(j, "first_seq", json_integer((json_int_t)r->first_seq));
		json_object_set_new(j, "last_seq", json_integer((json_int_t)r->last_seq));
		json_object_set_new(j, "last_hash", json_string(r->last_hash));
		json_object_set_new(j, "stopped", json_boolean(r->stopped));
		json_object_set_new(j, "checkpoints", json_integer((json_int_t)r->checkpoints));
		json_object_set_new(j, "last_checkpoint",
		                    r->checkpoints ? json_integer((json_int_t)r->last_checkpoint)
		                                   : json_null());
		json_object_set_new(j, "uncovered", json_integer((json_int_t)r->uncovered));
		json_object_set_new(j, "signatures_checked", json_boolean(r->keyed));
		if (r->keyed)
			json_object_set_new(j, "key_id", json_string(r->key_id));
	} else {
		json_object_set_new(j, "seq",
		                    r->seq ? json_integer((json_int_t)r->seq) : json_null());
		json_object_set_new(j, "file", pw_ctl_json_str(r->file));
		json_object_set_new(j, "line",
		                    r->line ? json_integer((json_int_t)r->line) : json_null());
		json_object_set_new(j, "error", json_string(r->why));
	}
	pw_ctl_print_json(j);
}

/* audit verify [--partial] [--key PUBKEY.pem] FILE... */
static int do_verify(int argc, char **argv)
{
	static const struct option opts[] = {{"partial", no_argument, NULL, 'P'},
	                                     {"key", required_argument, NULL, 'k'},
	                                     {NULL, 0, NULL, 0}};
	if (cmd_help("verify", argc, argv))
		return PW_CTL_OK;
	char **av = getopt_argv("verify", argc, argv), why[512];
	bool partial = false;
	const char *keyfile = NULL;
	EVP_PKEY *key = NULL;
	int c, rc = 0;
	if (!av)
		return pw_ctl_err(PW_CTL_FAILED, "out of memory");
	while (rc == 0 && (c = getopt_long(argc + 1, av, "", opts, NULL)) != -1) {
		if (c == 'P')
			partial = true;
		else if (c == 'k')
			keyfile = optarg;
		else
			rc = pw_ctl_usage(audit_cmds, "audit", "verify");
	}
	if (rc == 0 && optind >= argc + 1)
		rc = pw_ctl_usage(audit_cmds, "audit", "verify");
	if (rc == 0 && keyfile && !(key = pw_audit_key_read(keyfile, false, why, sizeof(why))))
		rc = pw_ctl_err(PW_CTL_FAILED, "--key %s: %s", keyfile, why);
	struct pw_audit_verify *r = rc ? NULL : malloc(sizeof(*r));
	if (rc == 0 && !r)
		rc = pw_ctl_err(PW_CTL_FAILED, "out of memory");
	if (rc == 0 && pw_audit_verify_signed((const char *const *)av + optind, argc + 1 - optind,
	                                      partial, key, r) < 0)
		rc = pw_ctl_err(PW_CTL_FAILED, "%s", r->why);
	if (rc == 0) {
		if (pw_ctl_json)
			verify_json(r);
		else
			verify_plain(r, partial);
		rc = r->ok ? PW_CTL_OK : PW_CTL_FAILED;
	}
	EVP_PKEY_free(key);
	free(r);
	free(av);
	return rc;
}

/* ---- keygen ---- */

/* The private key of k into a new file at path (0600, O_EXCL: never over one); 0 or errno. */
static int write_private(const char *path, EVP_PKEY *k)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600), e = 0;
	if (fd < 0)
		return errno;
	BIO *b = BIO_new_fd(fd, BIO_NOCLOSE);
	/* 0600 whatever the umask; PKCS#8, unencrypted, as `openssl genpkey` writes it */
	if (fchmod(fd, 0600) < 0)
		e = errno;
	else if (!b || PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) != 1 ||
	         BIO_flush(b) != 1)
		e = EIO;
	else if (fsync(fd) < 0)
		e = errno;
	BIO_free(b);
	if (close(fd) < 0 && !e)
		e = errno;
	if (e)
		unlink(path);
	return e;
}

/* audit keygen --out FILE */
static int do_keygen(int argc, char **argv)
{
	static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
	                                     {NULL, 0, NULL, 0}};
	if (cmd_help("keygen", argc, argv))
		return PW_CTL_OK;
	char **av = getopt_argv("keygen", argc, argv), id[PW_AUDIT_KEY_ID_HEX + 1];
	const char *out = NULL;
	int c, rc = 0, e;
	if (!av)
		return pw_ctl_err(PW_CTL_FAILED, "out of memory");
	while (rc == 0 && (c = getopt_long(argc + 1, av, "", opts, NULL)) != -1)
		if (c == 'o')
			out = optarg;
		else
			rc = pw_ctl_usage(audit_cmds, "audit", "keygen");
	if (rc == 0 && (!out || optind != argc + 1))
		rc = pw_ctl_usage(audit_cmds, "audit", "keygen");
	free(av);
	if (rc)
		return rc;
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	BIO *so = BIO_new_fp(stdout, BIO_NOCLOSE);
	if (!k || !so || pw_audit_key_id(k, id) < 0)
		rc = pw_ctl_err(PW_CTL_FAILED, "cannot make an Ed25519 key (OpenSSL)");
	else if ((e = write_private(out, k)))
		rc = pw_ctl_err(PW_CTL_FAILED, "%s: %s", out,
		                e == EEXIST ? "exists already: not overwritten" : strerror(e));
	else if (PEM_write_bio_PUBKEY(so, k) != 1 || BIO_flush(so) != 1)
		rc = pw_ctl_err(PW_CTL_FAILED, "cannot write the public key");
	else
		fprintf(stderr,
		        "the private key is in %s (0600; \"checkpoint\": {\"key_file\": ...}); "
		        "the public key above (key_id %s) is for `pgwardctl audit verify --key`\n",
		        out, id);
	BIO_free(so);
	EVP_PKEY_free(k);
	return rc;
}

/* ---- tail: printing one record ---- */

/* A scalar as k=v; nothing for an absent or null one (or an object, an array). */
static void put_kv(const char *key, json_t *v, size_t cap)
{
	if (!v || json_is_null(v) || json_is_object(v) || json_is_array(v))
		return;
	printf(" %s=", key);
	if (json_is_string(v))
		pw_ctl_put_str(json_string_value(v), json_string_length(v), cap);
	else if (json_is_integer(v))
		printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		printf("%g", json_real_value(v));
	else
		fputs(json_is_true(v) ? "true" : "false", stdout);
}

static void put_field(json_t *o, const char *key, size_t cap)
{
	put_kv(key, json_object_get(o, key), cap);
}

/* The kernel's record of the connecting process; dst for the kernel's own events, exe for
 * a session's start. */
static void put_kernel(json_t *k, bool exe, bool dst)
{
	if (!json_is_object(k))
		return;
	put_field(k, "pid", VALUE_CAP);
	put_field(k, "comm", VALUE_CAP);
	if (exe)
		put_field(k, "exe", VALUE_CAP);
	put_field(k, "cgroup", VALUE_CAP);
	if (dst)
		put_field(k, "dst", VALUE_CAP);
}

static void show_statement(json_t *o)
{
	static const char *const keys[] = {"session", "identity",    "decision", "status",
	                                   "rows",    "duration_us", "sqlstate", "message"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		put_field(o, keys[i], VALUE_CAP);
	put_field(o, "text", TEXT_CAP);
	put_field(o, "text_base64", TEXT_CAP); /* not UTF-8: as written */
	put_field(o, "text_bytes", VALUE_CAP);
}

/* a string, or - */
static void put_name(json_t *v)
{
	if (json_is_string(v))
		pw_ctl_put_str(json_string_value(v), json_string_length(v), VALUE_CAP);
	else
		putchar('-');
}

static void show_session_start(json_t *o)
{
	static const char *const keys[] = {"session", "identity", "matched"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		put_field(o, keys[i], VALUE_CAP);
	json_t *u = json_object_get(o, "user"), *d = json_object_get(o, "database");
	if (json_is_string(u) || json_is_string(d)) {
		fputs(" conn=", stdout);
		put_name(u);
		putchar('@');
		put_name(d);
	}
	put_field(o, "client", VALUE_CAP);
	put_field(o, "application_name", VALUE_CAP);
	put_kernel(json_object_get(o, "kernel"), true, false);
}

/* the members every line has, shown in its head or not at all */
static bool common_key(const char *k)
{
	static const char *const keys[] = {"v", "seq", "host", "pid", "ts", "type", "prev", "hash"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(k, keys[i]) == 0)
			return true;
	return false;
}

/* One record, one line: time, seq, type, then what matters of its type. */
static void show_plain(json_t *o)
{
	const char *type = json_string_value(json_object_get(o, "type"));
	json_t *ts = json_object_get(o, "ts"), *t = json_object_get(o, "type");
	pw_ctl_put_str(json_string_value(ts), json_string_length(ts), VALUE_CAP);
	printf(" #%" JSON_INTEGER_FORMAT " ", json_integer_value(json_object_get(o, "seq")));
	pw_ctl_put_str(type, json_string_length(t), VALUE_CAP);
	if (strcmp(type, "statement") == 0) {
		show_statement(o);
	} else if (strcmp(type, "session_start") == 0) {
		show_session_start(o);
	} else if (strcmp(type, "session_end") == 0) {
		static const char *const keys[] = {"session",  "reason",    "statements",
		                                   "bytes_in", "bytes_out", "duration_us"};
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			put_field(o, keys[i], VALUE_CAP);
	} else if (strcmp(type, "redirect") == 0 || strcmp(type, "connect_refused") == 0 ||
	           strcmp(type, "bypass_attempt") == 0) {
		put_field(o, "reason", VALUE_CAP);
		put_kernel(json_object_get(o, "kernel"), false, true);
	} else {
		const char *k;
		json_t *v;
		json_object_foreach(o, k, v)
		{
			if (!common_key(k))
				put_kv(k, v, VALUE_CAP);
		}
		put_kernel(json_object_get(o, "kernel"), true, true);
	}
	putchar('\n');
}

/* -j: the line as stored (its bytes, so that it can be compared with the trail), but
 * re-written in ASCII for a terminal when it holds anything else; -p: indented. */
static void show_json(json_t *o, const char *line, size_t n)
{
	bool tty = isatty(STDOUT_FILENO);
	bool ascii = true;
	for (size_t i = 0; ascii && i < n; i++)
		ascii = line[i] >= 0x20 && line[i] < 0x7f;
	if (!pw_ctl_pretty && (ascii || !tty)) {
		fwrite(line, 1, n, stdout);
		putchar('\n');
		return;
	}
	size_t flags = JSON_PRESERVE_ORDER | (pw_ctl_pretty ? JSON_INDENT(2) : JSON_COMPACT);
	char *s = json_dumps(o, flags | (tty ? JSON_ENSURE_ASCII : 0));
	if (s)
		puts(s);
	free(s);
}

/* ---- tail: choosing records ---- */

struct tail_args {
	const char *path;
	bool follow;
	long long n;
	bool by_session;
	long long session;
	const char *identity;
	const char *types; /* comma-separated */
};

static bool filtered(const struct tail_args *a)
{
	return a->by_session || a->identity || a->types;
}

/* Is t one of the comma-separated list? */
static bool type_listed(const char *list, const char *t)
{
	size_t tl = strlen(t);
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");
		if (n == tl && memcmp(p, t, n) == 0)
			return true;
		p += n + (p[n] == ',');
	}
	return false;
}

/* A cheap look before the JSON parse, for the filters that name exact bytes: the writer
 * puts "type":"T" and "session":N as they are. Never false for a record that matches. */
static bool may_match(const struct tail_args *a, const char *line, size_t n)
{
	char pat[96];
	if (a->by_session) {
		int k = snprintf(pat, sizeof(pat), "\"session\":%lld", a->session);
		if (!memmem(line, n, pat, (size_t)k))
			return false;
	}
	if (!a->types)
		return true;
	for (const char *p = a->types; *p;) {
		size_t tl = strcspn(p, ",");
		int k = snprintf(pat, sizeof(pat), "\"type\":\"%.*s\"", (int)tl, p);
		if (k > 0 && (size_t)k < sizeof(pat) && memmem(line, n, pat, (size_t)k))
			return true;
		p += tl + (p[tl] == ',');
	}
	return false;
}

/* The record of a line when it passes the filters (NULL: it does not, or is no record; a
 * line that is not JSON is said on stderr and skipped). */
static json_t *parse_match(const struct tail_args *a, const char *line, size_t n, off_t off)
{
	if (!may_match(a, line, n))
		return NULL;
	json_t *o = json_loadb(line, n, 0, NULL);
	const char *type = json_string_value(json_object_get(o, "type"));
	if (!json_is_object(o) || !type || !json_is_string(json_object_get(o, "ts")) ||
	    !json_is_integer(json_object_get(o, "seq"))) {
		fprintf(stderr, "warning: %s: the line at byte %lld is no record (skipped)\n",
		        a->path, (long long)off);
		json_decref(o);
		return NULL;
	}
	json_t *s = json_object_get(o, "session");
	const char *id = json_string_value(json_object_get(o, "identity"));
	bool ok = (!a->by_session || (json_is_integer(s) && json_integer_value(s) == a->session)) &&
	          (!a->identity || (id && strcmp(id, a->identity) == 0)) &&
	          (!a->types || type_listed(a->types, type));
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static void show(json_t *o, const char *line, size_t n)
{
	if (pw_ctl_json)
		show_json(o, line, n);
	else
		show_plain(o);
}

/* ---- tail: reading the file ---- */

/* Whole lines of a file that may be growing: a last line without its newline yet is kept
 * until the rest comes. */
struct reader {
	const char *path;
	int fd;
	dev_t dev;
	ino_t ino;
	off_t pos; /* the file's offset of buf[0] */
	char *buf;
	size_t start, scan, len, cap; /* lines from start; no newline before scan */
};

static int rd_open(struct reader *r, const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -1;
	}
	if (r->fd >= 0)
		close(r->fd);
	r->path = path;
	r->fd = fd;
	r->dev = st.st_dev;
	r->ino = st.st_ino;
	r->pos = 0;
	r->start = r->scan = r->len = 0;
	return 0;
}

/* From offset off on (the start of a line). */
static int rd_seek(struct reader *r, off_t off)
{
	if (lseek(r->fd, off, SEEK_SET) < 0)
		return -1;
	r->pos = off;
	r->start = r->scan = r->len = 0;
	return 0;
}

/* The next whole line (without its newline) and its offset: 1; 0 when none is whole yet;
 * -1 on a read error or a line past LINE_MAX_SIZE (errno). */
static int rd_line(struct reader *r, const char **line, size_t *n, off_t *off)
{
	for (;;) {
		char *nl =
		    r->len > r->scan ? memchr(r->buf + r->scan, '\n', r->len - r->scan) : NULL;
		if (nl) {
			*line = r->buf + r->start;
			*n = (size_t)(nl - *line);
			*off = r->pos + (off_t)r->start;
			r->start = r->scan = (size_t)(nl - r->buf) + 1;
			return 1;
		}
		r->scan = r->len;
		if (r->start) { /* keep only the line begun */
			memmove(r->buf, r->buf + r->start, r->len - r->start);
			r->pos += (off_t)r->start;
			r->len -= r->start;
			r->scan = r->len;
			r->start = 0;
		}
		if (r->cap - r->len < 65536) {
			size_t cap = r->cap ? r->cap * 2 : 1 << 20;
			char *b = cap <= LINE_MAX_SIZE ? realloc(r->buf, cap) : NULL;
			if (!b) {
				errno = r->cap >= LINE_MAX_SIZE / 2 ? EFBIG : ENOMEM;
				return -1;
			}
			r->buf = b;
			r->cap = cap;
		}
		ssize_t k = read(r->fd, r->buf + r->len, r->cap - r->len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return (int)k;
		r->len += (size_t)k;
	}
}

/* Where the last n whole lines of the file begin, read backwards from its end (a trail of
 * GiBs need not be read through). The first newline from the end ends the last whole line
 * (anything after it is a line still being written); each one before it starts a line. */
static off_t last_lines(int fd, long long n)
{
	struct stat st;
	char blk[65536];
	if (fstat(fd, &st) < 0)
		return 0;
	off_t end = st.st_size;
	bool ended = false;
	long long seen = 0;
	while (end > 0) {
		size_t k = end > (off_t)sizeof(blk) ? sizeof(blk) : (size_t)end;
		off_t base = end - (off_t)k;
		if (pread(fd, blk, k, base) != (ssize_t)k)
			return 0;
		for (size_t i = k; i-- > 0;) {
			if (blk[i] != '\n')
				continue;
			if ((ended && ++seen == n) || (!ended && n == 0))
				return base + (off_t)i + 1;
			ended = true;
		}
		end = base;
	}
	return 0;
}

/* ---- tail: the command ---- */

/* The last matching lines, when filters keep from counting them from the end. */
struct ring {
	struct {
		char *line;
		size_t n;
	} * e;
	long long cap, count; /* count: pushed in all; the oldest kept is at count % cap */
};

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

static int ring_push(struct ring *g, const char *line, size_t n)
{
	if (g->cap == 0)
		return 0;
	char *copy = malloc(n + 1);
	if (!copy)
		return -1;
	memcpy(copy, line, n);
	copy[n] = 0;
	long long i = g->count++ % g->cap;
	free(g->e[i].line);
	g->e[i].line = copy;
	g->e[i].n = n;
	return 0;
}

static void ring_show_free(struct ring *g, bool print)
{
	long long kept = g->count < g->cap ? g->count : g->cap;
	for (long long k = 0; print && k < kept; k++) {
		long long i = (g->count - kept + k) % g->cap;
		json_t *o = json_loadb(g->e[i].line, g->e[i].n, 0, NULL);
		if (o)
			show(o, g->e[i].line, g->e[i].n);
		json_decref(o);
	}
	for (long long i = 0; i < kept; i++)
		free(g->e[i].line);
	free(g->e);
}

/* Every whole line from where r is: shown when it passes, or kept in ring (when given). */
static int drain(const struct tail_args *a, struct reader *r, struct ring *ring)
{
	const char *line = NULL;
	size_t n = 0;
	off_t off = 0;
	int got = 0;
	while (!stopping && (got = rd_line(r, &line, &n, &off)) > 0) {
		json_t *o = parse_match(a, line, n, off);
		if (!o)
			continue;
		if (!ring)
			show(o, line, n);
		json_decref(o);
		if (ring && ring_push(ring, line, n) < 0)
			return pw_ctl_err(PW_CTL_FAILED, "out of memory");
	}
	if (got < 0)
		return pw_ctl_err(PW_CTL_FAILED, "%s: %s", a->path, strerror(errno));
	return 0;
}

/* -f: what is added, across rotations (FILE renamed, a new FILE made: the rest of the old
 * one, then the new one from its start), every 200 ms until SIGINT or SIGTERM. */
static int follow(const struct tail_args *a, struct reader *r)
{
	struct sigaction sa = {.sa_handler = on_stop};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!stopping) {
		int rc = drain(a, r, NULL);
		struct stat st, fst;
		fflush(stdout);
		if (rc)
			return rc;
		if (stat(a->path, &st) == 0 && (st.st_dev != r->dev || st.st_ino != r->ino)) {
			/* what was written before the rename comes first */
			if ((rc = drain(a, r, NULL)))
				return rc;
			if (r->len > r->start)
				fprintf(stderr,
				        "warning: %s: the rotated file ends in a cut line\n",
				        a->path);
			if (rd_open(r, a->path) == 0)
				continue;
		} else if (fstat(r->fd, &fst) == 0 && fst.st_size < r->pos + (off_t)r->len) {
			/* cut back (a torn line repaired at pgwardd's start): on from its end */
			fprintf(stderr, "warning: %s: the file was cut back\n", a->path);
			if (rd_seek(r, last_lines(r->fd, 0)) < 0)
				return pw_ctl_err(PW_CTL_FAILED, "%s: %s", a->path,
				                  strerror(errno));
		}
		nanosleep(&(struct timespec){0, POLL_NS}, NULL);
	}
	fflush(stdout);
	return PW_CTL_OK;
}

static int tail_args(int argc, char **argv, struct tail_args *a)
{
	static const struct option opts[] = {
	    {"follow", no_argument, NULL, 'f'},        {"lines", required_argument, NULL, 'n'},
	    {"session", required_argument, NULL, 's'}, {"identity", required_argument, NULL, 'i'},
	    {"type", required_argument, NULL, 't'},    {NULL, 0, NULL, 0}};
	char **av = getopt_argv("tail", argc, argv);
	int c, rc = 0;
	if (!av)
		return pw_ctl_err(PW_CTL_FAILED, "out of memory");
	while (rc == 0 && (c = getopt_long(argc + 1, av, "fn:", opts, NULL)) != -1) {
		if (c == 'f')
			a->follow = true;
		else if (c == 'n')
			rc =
			    pw_ctl_parse_int("-n", optarg, 0, TAIL_MAX_N, &a->n) ? 0 : PW_CTL_USAGE;
		else if (c == 's')
			rc = pw_ctl_parse_int("--session", optarg, 0, INT64_MAX, &a->session)
			         ? 0
			         : PW_CTL_USAGE;
		else if (c == 'i')
			a->identity = optarg;
		else if (c == 't')
			a->types = optarg;
		else
			rc = pw_ctl_usage(audit_cmds, "audit", "tail");
		a->by_session |= c == 's';
	}
	if (rc == 0 && optind != argc)
		rc = pw_ctl_usage(audit_cmds, "audit", "tail");
	if (rc == 0)
		a->path = av[optind];
	free(av);
	return rc;
}

/* audit tail [-f] [-n N] [--session ID] [--identity NAME] [--type T[,T...]] FILE */
static int do_tail(int argc, char **argv)
{
	struct tail_args a = {.n = 10};
	struct reader r = {.fd = -1};
	struct ring ring = {0};
	if (cmd_help("tail", argc, argv))
		return PW_CTL_OK;
	int rc = tail_args(argc, argv, &a);
	if (rc)
		return rc;
	if (rd_open(&r, a.path) < 0)
		return pw_ctl_err(PW_CTL_FAILED, "%s: %s", a.path, strerror(errno));
	if (!filtered(&a)) {
		/* the last n lines, found from the end */
		if (rd_seek(&r, last_lines(r.fd, a.n)) < 0)
			rc = pw_ctl_err(PW_CTL_FAILED, "%s: %s", a.path, strerror(errno));
		else
			rc = drain(&a, &r, NULL);
	} else {
		ring.cap = a.n;
		ring.e = calloc((size_t)a.n + 1, sizeof(*ring.e));
		rc = ring.e ? drain(&a, &r, &ring) : pw_ctl_err(PW_CTL_FAILED, "out of memory");
		if (ring.e)
			ring_show_free(&ring, rc == 0);
	}
	if (rc == 0 && a.follow)
		rc = follow(&a, &r);
	fflush(stdout);
	close(r.fd);
	free(r.buf);
	return rc;
}
