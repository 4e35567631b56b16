/* Reading a recording (docs/recording.md), and psql's rules for printing text, results and
 * errors (for pgwardctl session replay). The reader streams: the gzip stream is inflated 64
 * KiB at a time, frames are never held whole, and each direction keeps only the message it
 * is assembling, grown as its bytes come and never past PW_REC_MSG_MAX, so that a lying
 * length word costs nothing. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "pgward/log.h"
#include "pgward/proto.h"
#include "pgward/record_read.h"

#define CHUNK    65536
#define LINE_CAP 65536      /* the metadata line, an end frame's payload: at most */
#define KEEP_CAP (1u << 20) /* a message buffer larger than this is freed after use */

struct dirbuf {
	uint8_t hdr[5]; /* type byte and length word */
	unsigned hlen;
	bool sized;
	uint8_t *body;
	size_t cap;
	uint32_t need, have;
	uint64_t t0;
};

struct pw_rec_reader {
	int fd; /* -1: reading mem */
	const uint8_t *mem;
	size_t mem_len, mem_pos;
	z_stream z;
	bool z_init, member_end, in_eof;
	const char *zfail; /* inflate's error (a static string of zlib's) */
	uint64_t in_total;
	uint8_t in[CHUNK], out[CHUNK];
	size_t out_pos, out_len;
	uint64_t off; /* decompressed bytes consumed */
	json_t *meta;
	int fdir;           /* the current F/B frame: 0 F, 1 B */
	uint64_t ft, fleft; /* its time, its payload bytes still to come */
	uint64_t fat;       /* its offset */
	struct dirbuf d[2];
	int ready; /* the direction whose message was returned last, or -1 */
	int state; /* 0 reading, 1 at the end, -1 failed */
	struct pw_rec_end end;
	char err[256];
};

__attribute__((format(printf, 2, 3))) static int fail(struct pw_rec_reader *r, const char *fmt, ...)
{
	if (r->state >= 0) { /* the first failure is the one to tell */
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(r->err, sizeof(r->err), fmt, ap);
		va_end(ap);
		r->state = -1;
	}
	return -1;
}

static int read_in(struct pw_rec_reader *r)
{
	size_t n;
	if (r->fd < 0) {
		n = r->mem_len - r->mem_pos < CHUNK ? r->mem_len - r->mem_pos : CHUNK;
		memcpy(r->in, r->mem + r->mem_pos, n);
		r->mem_pos += n;
	} else {
		ssize_t k;
		do
			k = read(r->fd, r->in, CHUNK);
		while (k < 0 && errno == EINTR);
		if (k < 0)
			return fail(r, "read: %s", strerror(errno));
		n = (size_t)k;
	}
	r->z.next_in = r->in;
	r->z.avail_in = (uInt)n;
	r->in_total += n;
	r->in_eof = n == 0;
	return 0;
}

/* Decompressed bytes in out[]: 1; 0 at the end of the gzip stream; -1 on an error. */
static int fill(struct pw_rec_reader *r)
{
	while (r->state >= 0 && r->out_pos == r->out_len) {
		if (r->zfail) /* told once the bytes inflated before it are read */
			return fail(r, "corrupt gzip data: %s", r->zfail);
		if (!r->z.avail_in && !r->in_eof && read_in(r) < 0)
			return -1;
		if (r->member_end) {
			if (!r->z.avail_in) {
				if (r->in_eof)
					return 0;
				continue;
			}
			inflateReset(&r->z); /* another gzip member follows, as zcat reads it */
			r->member_end = false;
		}
		r->z.next_out = r->out;
		r->z.avail_out = CHUNK;
		int rc = inflate(&r->z, Z_NO_FLUSH);
		r->out_pos = 0;
		r->out_len = CHUNK - r->z.avail_out;
		if (rc == Z_STREAM_END)
			r->member_end = true;
		else if (rc == Z_DATA_ERROR && !r->off && !r->out_len)
			return fail(r, "not a recording (not gzip data: %s)",
			            r->z.msg ? r->z.msg : "?");
		else if (rc == Z_BUF_ERROR && !r->out_len && (r->in_eof || r->z.avail_in))
			return fail(r, r->in_total
			                   ? "the gzip stream is cut short (an incomplete file)"
			                   : "the file is empty");
		else if (rc != Z_OK && rc != Z_BUF_ERROR)
			r->zfail = r->z.msg ? r->z.msg : "?";
	}
	return r->state < 0 ? -1 : 1;
}

/* n bytes into p: 1; 0 when the stream ended before the first; -1 on an error; -2 when it
 * ended midway (*got came). */
static int get(struct pw_rec_reader *r, void *p, size_t n, size_t *got)
{
	*got = 0;
	while (*got < n) {
		int rc = fill(r);
		if (rc <= 0)
			return rc < 0 ? -1 : *got ? -2 : 0;
		size_t k = r->out_len - r->out_pos < n - *got ? r->out_len - r->out_pos : n - *got;
		memcpy((uint8_t *)p + *got, r->out + r->out_pos, k);
		r->out_pos += k;
		r->off += k;
		*got += k;
	}
	return 1;
}

static int read_header(struct pw_rec_reader *r)
{
	uint8_t h[9];
	size_t got, n = 0;
	int rc = get(r, h, sizeof(h), &got);
	if (rc == -1)
		return -1;
	if (rc != 1 || memcmp(h, "PGWREC ", 7) != 0)
		return fail(r, "not a recording (no PGWREC header)");
	if (memcmp(h + 7, "1\n", 2) != 0)
		return fail(r, "an unknown recording format (this pgwardctl reads PGWREC 1)");
	char *line = malloc(LINE_CAP);
	if (!line)
		return fail(r, "out of memory");
	for (;;) {
		uint8_t c;
		rc = get(r, &c, 1, &got);
		if (rc != 1 || c == '\n' || n == LINE_CAP)
			break;
		line[n++] = (char)c;
	}
	json_t *j = rc == 1 && n < LINE_CAP ? json_loadb(line, n, 0, NULL) : NULL;
	free(line);
	if (rc == -1)
		return -1;
	if (rc != 1 || n == LINE_CAP)
		return fail(r, "the metadata line is %s", rc != 1 ? "cut" : "too long");
	if (!json_is_object(j)) {
		json_decref(j);
		return fail(r, "the metadata line is not a JSON object");
	}
	r->meta = j;
	return 0;
}

/* fd, or gz in memory when fd is -1 */
static struct pw_rec_reader *start(int fd, const void *gz, size_t len, char *err, size_t errlen)
{
	struct pw_rec_reader *r = calloc(1, sizeof(*r));
	if (!r || inflateInit2(&r->z, 15 + 16) != Z_OK) { /* 16: gzip only */
		pw_errf(err, errlen, "out of memory");
		free(r);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	r->fd = fd;
	r->mem = gz;
	r->mem_len = len;
	r->ready = -1;
	r->z_init = true;
	if (read_header(r) < 0) {
		pw_errf(err, errlen, "%s", r->err);
		pw_rec_close(r);
		return NULL;
	}
	return r;
}

struct pw_rec_reader *pw_rec_open(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		pw_errf(err, errlen, "%s", strerror(errno));
		return NULL;
	}
	return start(fd, NULL, 0, err, errlen);
}

struct pw_rec_reader *pw_rec_open_mem(const void *gz, size_t len, char *err, size_t errlen)
{
	return start(-1, gz, len, err, errlen);
}

void pw_rec_close(struct pw_rec_reader *r)
{
	if (!r)
		return;
	if (r->z_init)
		inflateEnd(&r->z);
	if (r->fd >= 0)
		close(r->fd);
	json_decref(r->meta);
	free(r->d[0].body);
	free(r->d[1].body);
	free(r);
}

json_t *pw_rec_meta(const struct pw_rec_reader *r)
{
	return r->meta;
}

const char *pw_rec_error(const struct pw_rec_reader *r)
{
	return r->err;
}

const struct pw_rec_end *pw_rec_end(const struct pw_rec_reader *r)
{
	return &r->end;
}

/* An X or E frame: its JSON payload's reason. */
static int end_frame(struct pw_rec_reader *r, uint8_t kind, uint64_t t, uint32_t len, uint64_t at)
{
	if (len > LINE_CAP)
		return fail(r, "the end frame at offset %llu is too long (%u bytes)",
		            (unsigned long long)at, len);
	if (kind == 'X' && r->end.truncated)
		return fail(r, "a second truncation frame, at offset %llu", (unsigned long long)at);
	char *p = malloc((size_t)len + 1);
	size_t got;
	int rc = p ? get(r, p, len, &got) : fail(r, "out of memory");
	json_t *j = rc == 1 ? json_loadb(p, len, 0, NULL) : NULL;
	free(p);
	if (rc == -1)
		return -1;
	if (rc != 1 && len)
		return fail(r, "the end frame at offset %llu is cut", (unsigned long long)at);
	if (!json_is_object(j)) {
		json_decref(j);
		return fail(r, "the end frame at offset %llu holds no JSON object",
		            (unsigned long long)at);
	}
	const char *why = json_string_value(json_object_get(j, "reason"));
	if (!r->end.ended && !r->end.truncated)
		r->end.mid_message = r->d[0].hlen || r->d[1].hlen;
	snprintf(kind == 'E' ? r->end.reason : r->end.x_reason, sizeof(r->end.reason), "%s",
	         why ? why : "?");
	r->end.ended |= kind == 'E';
	r->end.truncated |= kind == 'X';
	r->end.t_us = t;
	json_decref(j);
	return 1;
}

/* The next frame's header (and an end frame whole): 1, 0 at the end, -1. */
static int next_frame(struct pw_rec_reader *r)
{
	uint8_t h[13];
	size_t got;
	uint64_t at = r->off, t = 0;
	int rc = get(r, h, sizeof(h), &got);
	if (rc == 0) {
		if (!r->end.ended && !r->end.truncated && (r->d[0].hlen || r->d[1].hlen))
			return fail(r, "the recording ends in the middle of a message, without an "
			               "end frame (the file is cut)");
		r->state = 1;
		return 0;
	}
	if (rc == -2)
		return fail(r, "the frame at offset %llu is cut (%zu of its 13 header bytes)",
		            (unsigned long long)at, got);
	if (rc < 0)
		return -1;
	for (int i = 1; i < 9; i++)
		t = t << 8 | h[i];
	if (r->end.ended)
		return fail(r, "a frame after the end frame, at offset %llu",
		            (unsigned long long)at);
	if (h[0] == 'X' || h[0] == 'E')
		return end_frame(r, h[0], t, pw_be32(h + 9), at);
	if (h[0] != 'F' && h[0] != 'B')
		return fail(r, "an unknown frame kind 0x%02x at offset %llu", h[0],
		            (unsigned long long)at);
	if (r->end.truncated)
		return fail(r, "data after the truncation frame, at offset %llu",
		            (unsigned long long)at);
	r->fdir = h[0] == 'B';
	r->ft = t;
	r->fleft = pw_be32(h + 9);
	r->fat = at;
	return 1;
}

/* Up to n bytes of the current frame into its direction's message: how many it took (the
 * message is whole once sized and have == need), or -1. */
static long feed(struct pw_rec_reader *r, struct dirbuf *d, const uint8_t *p, size_t n)
{
	size_t i = 0;
	if (!d->hlen)
		d->t0 = r->ft;
	while (d->hlen < 5 && i < n)
		d->hdr[d->hlen++] = p[i++];
	if (d->hlen < 5)
		return (long)i;
	if (!d->sized) {
		uint32_t len = pw_be32(d->hdr + 1);
		if (len < 4 || len > PW_REC_MSG_MAX)
			return fail(r,
			            "a %s message (type 0x%02x) in the frame at offset %llu says "
			            "its length is %u",
			            r->fdir ? "backend" : "frontend", d->hdr[0],
			            (unsigned long long)r->fat, len);
		d->need = len - 4;
		d->have = 0;
		d->sized = true;
	}
	size_t k = n - i < d->need - d->have ? n - i : d->need - d->have;
	if (d->have + k + 1 > d->cap) { /* grown as bytes come: a length word alone costs nothing */
		size_t cap = d->cap ? d->cap : 256;
		while (cap < d->have + k + 1)
			cap *= 2;
		cap = cap > (size_t)d->need + 1 ? (size_t)d->need + 1 : cap;
		uint8_t *b = realloc(d->body, cap);
		if (!b)
			return fail(r, "out of memory (a message of %u bytes)", d->need);
		d->body = b;
		d->cap = cap;
	}
	memcpy(d->body + d->have, p + i, k);
	d->have += (uint32_t)k;
	return (long)(i + k);
}

int pw_rec_next(struct pw_rec_reader *r, struct pw_rec_msg *m)
{
	if (r->state)
		return r->state < 0 ? -1 : 0;
	if (r->ready >= 0) {
		struct dirbuf *d = &r->d[r->ready];
		d->hlen = d->need = d->have = 0;
		d->sized = false;
		if (d->cap > KEEP_CAP) {
			free(d->body);
			d->body = NULL;
			d->cap = 0;
		}
		r->ready = -1;
	}
	for (;;) {
		if (!r->fleft) {
			int rc = next_frame(r);
			if (rc <= 0)
				return rc;
			continue;
		}
		int rc = fill(r);
		if (rc <= 0)
			return rc < 0
			           ? -1
			           : fail(r, "the frame at offset %llu is cut (%llu bytes missing)",
			                  (unsigned long long)r->fat, (unsigned long long)r->fleft);
		struct dirbuf *d = &r->d[r->fdir];
		size_t n = r->out_len - r->out_pos;
		long k = feed(r, d, r->out + r->out_pos, n < r->fleft ? n : (size_t)r->fleft);
		if (k < 0)
			return -1;
		r->out_pos += (size_t)k;
		r->off += (uint64_t)k;
		r->fleft -= (uint64_t)k;
		if (d->sized && d->have == d->need) {
			d->body[d->have] = 0; /* bodies end in a NUL: strings in them are safe */
			*m = (struct pw_rec_msg){.dir = r->fdir ? 'B' : 'F',
			                         .type = d->hdr[0],
			                         .t_us = d->t0,
			                         .t_end_us = r->ft,
			                         .body = d->body,
			                         .len = d->need};
			r->ready = r->fdir;
			return 1;
		}
	}
}

/* ---- a message's fields ---- */

const char *pw_rec_cstr(const struct pw_rec_msg *m, size_t *o)
{
	const char *s = *o < m->len ? (const char *)m->body + *o : "";
	*o += *o < m->len ? strlen(s) + 1 : 0;
	return s;
}

unsigned pw_rec_be16(const struct pw_rec_msg *m, size_t *o)
{
	unsigned v = *o + 2 <= m->len ? (unsigned)(m->body[*o] << 8 | m->body[*o + 1]) : 0;
	*o += 2;
	return v;
}

const char *pw_rec_msg_name(const struct pw_rec_msg *m, char *buf, size_t cap)
{
	static const char fe[] = " QQuery PParse BBind EExecute DDescribe CClose SSync HFlush "
	                         "XTerminate dCopyData cCopyDone fCopyFail FFunctionCall "
	                         "pPasswordMessage ",
	                  be[] = " RAuthentication KBackendKeyData 2BindComplete 3CloseComplete "
	                         "CCommandComplete dCopyData cCopyDone GCopyInResponse "
	                         "HCopyOutResponse WCopyBothResponse DDataRow IEmptyQueryResponse "
	                         "EErrorResponse VFunctionCallResponse vNegotiateProtocolVersion "
	                         "nNoData NNoticeResponse ANotificationResponse "
	                         "tParameterDescription SParameterStatus 1ParseComplete "
	                         "sPortalSuspended ZReadyForQuery TRowDescription ";
	char key[3] = {' ', (char)m->type, 0};
	const char *p = m->type > ' ' ? strstr(m->dir == 'F' ? fe : be, key) : NULL;
	if (p)
		snprintf(buf, cap, "%.*s", (int)strcspn(p + 2, " "), p + 2);
	return p ? buf : NULL;
}

/* ---- psql's text rules (PostgreSQL 15: fe_utils/mbprint.c, common/wchar.c), for UTF-8 ---- */

/* common/unicode_combining_table.h and unicode_east_asian_fw_table.h: code point ranges
 * "FIRST[-LAST]", in order, parsed once */
static const char combining_s[] =
    "0300-036F 0483-0489 0591-05BD 05BF 05C1-05C2 05C4-05C5 05C7 0610-061A 064B-065F 0670 "
    "06D6-06DC 06DF-06E4 06E7-06E8 06EA-06ED 0711 0730-074A 07A6-07B0 07EB-07F3 07FD "
    "0816-0819 081B-0823 0825-0827 0829-082D 0859-085B 0898-089F 08CA-08E1 08E3-0902 093A "
    "093C 0941-0948 094D 0951-0957 0962-0963 0981 09BC 09C1-09C4 09CD 09E2-09E3 09FE-0A02 "
    "0A3C 0A41-0A51 0A70-0A71 0A75 0A81-0A82 0ABC 0AC1-0AC8 0ACD 0AE2-0AE3 0AFA-0B01 0B3C "
    "0B3F 0B41-0B44 0B4D-0B56 0B62-0B63 0B82 0BC0 0BCD 0C00 0C04 0C3C 0C3E-0C40 0C46-0C56 "
    "0C62-0C63 0C81 0CBC 0CBF 0CC6 0CCC-0CCD 0CE2-0CE3 0D00-0D01 0D3B-0D3C 0D41-0D44 0D4D "
    "0D62-0D63 0D81 0DCA 0DD2-0DD6 0E31 0E34-0E3A 0E47-0E4E 0EB1 0EB4-0EBC 0EC8-0ECD "
    "0F18-0F19 0F35 0F37 0F39 0F71-0F7E 0F80-0F84 0F86-0F87 0F8D-0FBC 0FC6 102D-1030 "
    "1032-1037 1039-103A 103D-103E 1058-1059 105E-1060 1071-1074 1082 1085-1086 108D 109D "
    "135D-135F 1712-1714 1732-1733 1752-1753 1772-1773 17B4-17B5 17B7-17BD 17C6 17C9-17D3 "
    "17DD 180B-180D 180F 1885-1886 18A9 1920-1922 1927-1928 1932 1939-193B 1A17-1A18 1A1B "
    "1A56 1A58-1A60 1A62 1A65-1A6C 1A73-1A7F 1AB0-1B03 1B34 1B36-1B3A 1B3C 1B42 1B6B-1B73 "
    "1B80-1B81 1BA2-1BA5 1BA8-1BA9 1BAB-1BAD 1BE6 1BE8-1BE9 1BED 1BEF-1BF1 1C2C-1C33 "
    "1C36-1C37 1CD0-1CD2 1CD4-1CE0 1CE2-1CE8 1CED 1CF4 1CF8-1CF9 1DC0-1DFF 20D0-20F0 "
    "2CEF-2CF1 2D7F 2DE0-2DFF 302A-302D 3099-309A A66F-A672 A674-A67D A69E-A69F A6F0-A6F1 "
    "A802 A806 A80B A825-A826 A82C A8C4-A8C5 A8E0-A8F1 A8FF A926-A92D A947-A951 A980-A982 "
    "A9B3 A9B6-A9B9 A9BC-A9BD A9E5 AA29-AA2E AA31-AA32 AA35-AA36 AA43 AA4C AA7C AAB0 "
    "AAB2-AAB4 AAB7-AAB8 AABE-AABF AAC1 AAEC-AAED AAF6 ABE5 ABE8 ABED FB1E FE00-FE0F "
    "FE20-FE2F 101FD 102E0 10376-1037A 10A01-10A0F 10A38-10A3F 10AE5-10AE6 10D24-10D27 "
    "10EAB-10EAC 10F46-10F50 10F82-10F85 11001 11038-11046 11070 11073-11074 1107F-11081 "
    "110B3-110B6 110B9-110BA 110C2 11100-11102 11127-1112B 1112D-11134 11173 11180-11181 "
    "111B6-111BE 111C9-111CC 111CF 1122F-11231 11234 11236-11237 1123E 112DF 112E3-112EA "
    "11300-11301 1133B-1133C 11340 11366-11374 11438-1143F 11442-11444 11446 1145E "
    "114B3-114B8 114BA 114BF-114C0 114C2-114C3 115B2-115B5 115BC-115BD 115BF-115C0 "
    "115DC-115DD 11633-1163A 1163D 1163F-11640 116AB 116AD 116B0-116B5 116B7 1171D-1171F "
    "11722-11725 11727-1172B 1182F-11837 11839-1183A 1193B-1193C 1193E 11943 119D4-119DB "
    "119E0 11A01-11A0A 11A33-11A38 11A3B-11A3E 11A47 11A51-11A56 11A59-11A5B 11A8A-11A96 "
    "11A98-11A99 11C30-11C3D 11C3F 11C92-11CA7 11CAA-11CB0 11CB2-11CB3 11CB5-11CB6 "
    "11D31-11D45 11D47 11D90-11D91 11D95 11D97 11EF3-11EF4 16AF0-16AF4 16B30-16B36 16F4F "
    "16F8F-16F92 16FE4 1BC9D-1BC9E 1CF00-1CF46 1D167-1D169 1D17B-1D182 1D185-1D18B "
    "1D1AA-1D1AD 1D242-1D244 1DA00-1DA36 1DA3B-1DA6C 1DA75 1DA84 1DA9B-1DAAF 1E000-1E02A "
    "1E130-1E136 1E2AE 1E2EC-1E2EF 1E8D0-1E8D6 1E944-1E94A E0100-E01EF ";
static const char wide_s[] =
    "1100-115F 231A-231B 2329-232A 23E9-23EC 23F0 23F3 25FD-25FE 2614-2615 2648-2653 267F "
    "2693 26A1 26AA-26AB 26BD-26BE 26C4-26C5 26CE 26D4 26EA 26F2-26F3 26F5 26FA 26FD 2705 "
    "270A-270B 2728 274C 274E 2753-2755 2757 2795-2797 27B0 27BF 2B1B-2B1C 2B50 2B55 "
    "2E80-2E99 2E9B-2EF3 2F00-2FD5 2FF0-2FFB 3000-303E 3041-3096 3099-30FF 3105-312F "
    "3131-318E 3190-31E3 31F0-321E 3220-3247 3250-4DBF 4E00-A48C A490-A4C6 A960-A97C "
    "AC00-D7A3 F900-FAFF FE10-FE19 FE30-FE52 FE54-FE66 FE68-FE6B FF01-FF60 FFE0-FFE6 "
    "16FE0-16FE4 16FF0-16FF1 17000-187F7 18800-18CD5 18D00-18D08 1AFF0-1AFF3 1AFF5-1AFFB "
    "1AFFD-1AFFE 1B000-1B122 1B150-1B152 1B164-1B167 1B170-1B2FB 1F004 1F0CF 1F18E "
    "1F191-1F19A 1F200-1F202 1F210-1F23B 1F240-1F248 1F250-1F251 1F260-1F265 1F300-1F320 "
    "1F32D-1F335 1F337-1F37C 1F37E-1F393 1F3A0-1F3CA 1F3CF-1F3D3 1F3E0-1F3F0 1F3F4 "
    "1F3F8-1F43E 1F440 1F442-1F4FC 1F4FF-1F53D 1F54B-1F54E 1F550-1F567 1F57A 1F595-1F596 "
    "1F5A4 1F5FB-1F64F 1F680-1F6C5 1F6CC 1F6D0-1F6D2 1F6D5-1F6D7 1F6DD-1F6DF 1F6EB-1F6EC "
    "1F6F4-1F6FC 1F7E0-1F7EB 1F7F0 1F90C-1F93A 1F93C-1F945 1F947-1F9FF 1FA70-1FA74 "
    "1FA78-1FA7C 1FA80-1FA86 1FA90-1FAAC 1FAB0-1FABA 1FAC0-1FAC5 1FAD0-1FAD9 1FAE0-1FAE7 "
    "1FAF0-1FAF6 20000-2FFFD 30000-3FFFD ";
static uint32_t combining[2 * 304], wide[2 * 121];
static int ncombining, nwide;
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static int parse_ranges(const char *s, uint32_t *t, int cap)
{
	int n = 0;
	for (char *e; *s && n < cap; s = e + (*e == ' '), n++) {
		t[2 * n] = (uint32_t)strtoul(s, &e, 16);
		t[2 * n + 1] = *e == '-' ? (uint32_t)strtoul(e + 1, &e, 16) : t[2 * n];
	}
	return n;
}

static void tables_init(void)
{
	ncombining = parse_ranges(combining_s, combining, 304);
	nwide = parse_ranges(wide_s, wide, 121);
}

static bool in_table(uint32_t u, const uint32_t *t, int n)
{
	int lo = 0, hi = n - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		if (u > t[2 * mid + 1])
			lo = mid + 1;
		else if (u < t[2 * mid])
			hi = mid - 1;
		else
			return true;
	}
	return false;
}

int pw_rec_mblen(const uint8_t *s)
{
	return (*s & 0x80) == 0      ? 1
	       : (*s & 0xe0) == 0xc0 ? 2
	       : (*s & 0xf0) == 0xe0 ? 3
	       : (*s & 0xf8) == 0xf0 ? 4
	                             : 1;
}

/* utf8_to_unicode, but it stops at a NUL rather than read past it */
static uint32_t ucs(const uint8_t *c)
{
	int n = pw_rec_mblen(c);
	if (n == 1)
		return (*c & 0x80) ? 0xffffffff : *c;
	uint32_t u = c[0] & (0x7f >> n);
	for (int i = 1; i < n; i++) {
		if (!c[i])
			return 0xffffffff;
		u = u << 6 | (c[i] & 0x3f);
	}
	return u;
}

int pw_rec_dsplen(const uint8_t *s)
{
	uint32_t u = ucs(s);
	if (u == 0)
		return 0;
	if (u < 0x20 || (u >= 0x7f && u < 0xa0) || u > 0x10ffff)
		return -1;
	pthread_once(&tables_once, tables_init);
	return in_table(u, combining, ncombining) ? 0 : in_table(u, wide, nwide) ? 2 : 1;
}

/* utf_charcheck, quirks included: the byte length of a valid character, or -1 */
static int charcheck(const uint8_t *c)
{
	if ((*c & 0x80) == 0)
		return 1;
	if ((*c & 0xe0) == 0xc0)
		return (c[1] & 0xc0) == 0x80 && (c[0] & 0x1f) > 0x01 ? 2 : -1;
	if ((*c & 0xf0) == 0xe0) {
		if ((c[1] & 0xc0) != 0x80 || ((c[0] & 0x0f) == 0 && !(c[1] & 0x20)) ||
		    (c[2] & 0xc0) != 0x80)
			return -1;
		int z = c[0] & 0x0f, yx = ((c[1] & 0x3f) << 6) | (c[0] & 0x3f), lx = yx & 0x7f;
		if ((z == 0x0f && ((yx & 0xffe) == 0xffe ||
		                   ((yx & 0xf80) == 0xd80 && lx >= 0x30 && lx <= 0x4f))) ||
		    (z == 0x0d && (yx & 0xb00) == 0x800))
			return -1;
		return 3;
	}
	if ((*c & 0xf8) == 0xf0) {
		int u = ((c[0] & 0x07) << 2) | ((c[1] & 0x30) >> 4);
		if ((c[1] & 0xc0) != 0x80 || u == 0 || u > 0x10 || (c[2] & 0xc0) != 0x80 ||
		    (c[3] & 0xc0) != 0x80)
			return -1;
		return (c[1] & 0x0f) == 0x0f && (c[2] & 0x3f) == 0x3f && (c[3] & 0x3e) == 0x3e ? -1
		                                                                               : 4;
	}
	return -1;
}

/* mbvalidate: what psql does to every header and cell, drop the bytes of invalid UTF-8 */
static void validate(char *s)
{
	uint8_t *p = (uint8_t *)s, *w = p;
	while (*p) {
		int n = charcheck(p);
		if (n < 0) {
			p++;
			continue;
		}
		memmove(w, p, (size_t)n);
		w += n;
		p += n;
	}
	*w = 0;
}

void pw_rec_text(FILE *f, const char *s, size_t n, bool line)
{
	const uint8_t *p = (const uint8_t *)s, *e = p + n;
	while (p < e) {
		int k = pw_rec_mblen(p);
		if (k > e - p || charcheck(p) != k || (k == 1 && (*p & 0x80))) {
			fprintf(f, "\\x%02X", *p++);
		} else if (pw_rec_dsplen(p) < 0 &&
		           (line || (*p != '\t' && *p != '\n' &&
		                     (*p != '\r' || p + 1 == e || p[1] != '\n')))) {
			fprintf(f, k == 1 ? "\\x%02X" : "\\u%04X", ucs(p));
			p += k;
		} else {
			fwrite(p, 1, (size_t)k, f);
			p += k;
		}
	}
}

int pw_rec_format(struct pw_rec_lines *f, const char *s)
{
	size_t len = strlen(s);
	int lines = 1;
	for (const char *p = s; *p; p++)
		lines += *p == '\n';
	if (len * 8 + 16 > f->cap) {
		char *b = realloc(f->buf, len * 8 + 16);
		if (!b)
			return -1;
		f->buf = b;
		f->cap = len * 8 + 16;
	}
	if (lines > f->lcap) {
		size_t *st = realloc(f->start, sizeof(*st) * (size_t)lines);
		int *w = st ? realloc(f->width, sizeof(*w) * (size_t)lines) : NULL;
		if (st)
			f->start = st;
		if (!w)
			return -1;
		f->width = w;
		f->lcap = lines;
	}
	char *o = f->buf;
	int lw = 0;
	f->n = 0;
	f->start[0] = 0;
	for (const uint8_t *p = (const uint8_t *)s; *p;) {
		int cl = pw_rec_mblen(p), w = pw_rec_dsplen(p);
		if (cl == 1 && *p == '\n') {
			*o++ = 0;
			f->width[f->n++] = lw;
			lw = 0;
			f->start[f->n] = (size_t)(o - f->buf);
		} else if (cl == 1 && *p == '\r') {
			o += sprintf(o, "\\r");
			lw += 2;
		} else if (cl == 1 && *p == '\t') {
			do
				*o++ = ' ';
			while (++lw % 8);
		} else if (w < 0) {
			o += sprintf(o, cl == 1 ? "\\x%02X" : "\\u%04X", ucs(p) & 0xffffff);
			lw += cl == 1 ? 4 : 6;
		} else {
			memcpy(o, p, (size_t)cl);
			o += cl;
			lw += w;
		}
		p += cl;
	}
	*o = 0;
	f->width[f->n++] = lw;
	return 0;
}

/* ---- results and messages as psql prints them ---- */

void pw_rec_result_free(struct pw_rec_result *r)
{
	for (size_t i = 0; i < r->nrows; i++)
		free(r->rows[i]);
	free(r->rows);
	free(r->names);
	free(r->types);
	free(r->tag);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

int pw_rec_result_desc(struct pw_rec_result *r, const uint8_t *b, uint32_t len)
{
	int n = len >= 2 ? (int16_t)(b[0] << 8 | b[1]) : 0;
	size_t o = 2, out = 0;
	pw_rec_result_free(r);
	r->tuples = true;
	r->names = malloc((size_t)len + 1);
	r->types = calloc(n > 0 ? (size_t)n : 1, sizeof(uint32_t));
	if (!r->names || !r->types)
		return -1;
	/* each: name, table oid, column, type oid, size, modifier, format; a cut one ends it */
	for (; r->ncols < n && o < len; r->ncols++) {
		const uint8_t *z = memchr(b + o, 0, len - o);
		if (!z || (size_t)(z - b) + 19 > len)
			break;
		memcpy(r->names + out, b + o, (size_t)(z - b) - o + 1);
		validate(r->names + out);
		out += strlen(r->names + out) + 1;
		r->types[r->ncols] = pw_be32(z + 7);
		o = (size_t)(z - b) + 19;
	}
	return 0;
}

int pw_rec_result_row(struct pw_rec_result *r, const uint8_t *b, uint32_t len)
{
	int n = len >= 2 ? (int16_t)(b[0] << 8 | b[1]) : 0;
	if (!r->tuples) { /* no RowDescription (an Execute without Describe): unnamed columns */
		pw_rec_result_free(r);
		r->tuples = true;
		r->ncols = n > 0 ? n : 0;
		r->names = calloc((size_t)r->ncols + 1, 1);
		r->types = calloc((size_t)r->ncols + 1, sizeof(uint32_t));
		if (!r->names || !r->types)
			return -1;
	}
	if (r->nrows == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		char **rows = realloc(r->rows, cap * sizeof(char *));
		if (!rows)
			return -1;
		r->rows = rows;
		r->cap = cap;
	}
	/* the cells, NULL and missing ones empty, each cut at a NUL as psql's strings are */
	char *c = malloc((size_t)len + (size_t)r->ncols + 1), *o = c;
	size_t p = 2;
	if (!c)
		return -1;
	*c = 0; /* no columns: still a string */
	for (int i = 0; i < r->ncols; i++) {
		*o = 0;
		if (i < n && p + 4 <= len) {
			uint32_t vl = pw_be32(b + p); /* 0xffffffff: NULL */
			p += 4;
			if (vl != 0xffffffff && vl <= len - p) {
				size_t k = strnlen((const char *)b + p, vl);
				memcpy(o, b + p, k);
				o[k] = 0;
				p += vl;
			} else if (vl != 0xffffffff) {
				p = len; /* a length past the end: the rest is empty */
			}
		}
		validate(o);
		o += strlen(o) + 1;
	}
	r->rows[r->nrows++] = c;
	return 0;
}

/* reportErrorPosition (libpq): the query's line with the error, cut to about 60 columns, and
 * a caret under the character at loc (1-based, in characters) */
static void caret(FILE *out, const char *query, long loc)
{
	size_t slen = strlen(query) + 1;
	char *w = slen <= (64u << 20) ? strdup(query) : NULL;
	int *qidx = w ? malloc(slen * sizeof(int)) : NULL, *scr = malloc(slen * sizeof(int));
	int cno, qoff = 0, soff = 0, line = 1, ibeg = 0, iend = -1;
	loc--;
	for (cno = 0; qidx && scr && w[qoff]; cno++) {
		char ch = w[qoff];
		qidx[cno] = qoff;
		scr[cno] = soff;
		if (ch == '\t') {
			w[qoff] = ' ';
		} else if (ch == '\r' || ch == '\n') {
			if (cno >= loc) {
				iend = cno;
				break;
			}
			if (ch == '\r' || cno == 0 || w[qidx[cno - 1]] != '\r')
				line++;
			ibeg = cno + 1;
		}
		int d = pw_rec_dsplen((const uint8_t *)w + qoff);
		soff += d <= 0 ? 1 : d;
		qoff += (int)strnlen(w + qoff, (size_t)pw_rec_mblen((const uint8_t *)w + qoff));
	}
	if (qidx && scr && iend < 0) {
		iend = cno;
		qidx[iend] = qoff;
		scr[iend] = soff;
	}
	if (qidx && scr && loc <= cno) {
		bool bt = false, et = false;
		if (scr[iend] - scr[ibeg] > 60) {
			if (scr[ibeg] + 60 >= scr[loc] + 10) {
				while (scr[iend] - scr[ibeg] > 60)
					iend--;
				et = true;
			} else {
				for (; scr[loc] + 10 < scr[iend]; et = true)
					iend--;
				for (; scr[iend] - scr[ibeg] > 60; bt = true)
					ibeg++;
			}
		}
		w[qidx[iend]] = 0;
		int pl = fprintf(out, "LINE %d: %s", line, bt ? "..." : "");
		pw_rec_text(out, w + qidx[ibeg], strlen(w + qidx[ibeg]), false);
		fprintf(out, "%s\n%*s^\n", et ? "..." : "", pl + scr[loc] - scr[ibeg], "");
	}
	free(w);
	free(qidx);
	free(scr);
}

static void put_field(FILE *out, const char *label, const char *v)
{
	if (v) {
		fputs(label, out);
		pw_rec_text(out, v, strlen(v), false);
		fputc('\n', out);
	}
}

void pw_rec_print_error(FILE *out, const uint8_t *b, uint32_t len, const char *query, bool error)
{
	const char *sev = pw_error_field(b, len, 'S'), *msg = pw_error_field(b, len, 'M');
	const char *pos = pw_error_field(b, len, 'P'), *ipos = pw_error_field(b, len, 'p');
	const char *iq = pw_error_field(b, len, 'q'), *qt = NULL, *at = NULL;
	if (!sev)
		sev = pw_error_field(b, len, 'V');
	if (sev) {
		pw_rec_text(out, sev, strlen(sev), false);
		fputs(":  ", out);
	}
	if (msg)
		pw_rec_text(out, msg, strlen(msg), false);
	/* a position shows as a LINE display when the query is known, else as text */
	if (pos)
		query ? (void)(qt = query) : (void)(at = pos);
	else if (ipos)
		iq ? (void)(qt = iq) : (void)(at = ipos);
	if (at) {
		fputs(" at character ", out);
		pw_rec_text(out, at, strlen(at), false);
	}
	fputc('\n', out);
	long loc = qt ? strtol(pos ? pos : ipos, NULL, 10) : 0;
	if (qt && loc > 0 && loc < 0x7fffffff)
		caret(out, qt, loc);
	put_field(out, "DETAIL:  ", pw_error_field(b, len, 'D'));
	put_field(out, "HINT:  ", pw_error_field(b, len, 'H'));
	put_field(out, "QUERY:  ", iq);
	if (error) /* psql's SHOW_CONTEXT errors: a notice's context is not shown */
		put_field(out, "CONTEXT:  ", pw_error_field(b, len, 'W'));
}
