/* Wire-protocol helpers: validation of frontend framing and the messages pgwardd writes. */
#include <string.h>

#include "pgward/proto.h"

bool pw_frontend_type_valid(uint8_t t)
{
	switch (t) {
	case 'B': /* Bind */
	case 'C': /* Close */
	case 'D': /* Describe */
	case 'E': /* Execute */
	case 'F': /* FunctionCall */
	case 'H': /* Flush */
	case 'P': /* Parse */
	case 'Q': /* Query */
	case 'S': /* Sync */
	case 'X': /* Terminate */
	case 'c': /* CopyDone */
	case 'd': /* CopyData */
	case 'f': /* CopyFail */
		return true;
	default:
		return false;
	}
}

int pw_startup_parse(const uint8_t *body, size_t len, struct pw_startup *st, const char **why)
{
	st->n = 0;
	size_t i = 0;
	for (;;) {
		if (i >= len) {
			*why = "startup packet is not terminated";
			return -1;
		}
		if (body[i] == '\0') {
			if (i + 1 != len) {
				*why = "trailing bytes after the startup parameters";
				return -1;
			}
			return 0;
		}
		const char *k = (const char *)body + i;
		const void *z = memchr(body + i, 0, len - i);
		if (!z) {
			*why = "unterminated startup parameter name";
			return -1;
		}
		i = (size_t)((const uint8_t *)z - body) + 1;
		if (i >= len) {
			*why = "startup parameter without a value";
			return -1;
		}
		const char *v = (const char *)body + i;
		z = memchr(body + i, 0, len - i);
		if (!z) {
			*why = "unterminated startup parameter value";
			return -1;
		}
		i = (size_t)((const uint8_t *)z - body) + 1;
		if (st->n == PW_MAX_PARAMS) {
			*why = "too many startup parameters";
			return -1;
		}
		st->key[st->n] = k;
		st->val[st->n] = v;
		st->n++;
	}
}

const char *pw_startup_get(const struct pw_startup *st, const char *key)
{
	for (int i = 0; i < st->n; i++)
		if (strcmp(st->key[i], key) == 0)
			return st->val[i];
	return NULL;
}

static size_t put_field(uint8_t *out, size_t cap, size_t off, char code, const char *s)
{
	size_t n = strlen(s);
	if (off + 1 + n + 1 > cap)
		return 0;
	out[off] = (uint8_t)code;
	memcpy(out + off + 1, s, n + 1);
	return off + 1 + n + 1;
}

size_t pw_msg_error_to(uint8_t *out, size_t cap, const char *severity, const char *sqlstate,
                       const char *message, const char *detail)
{
	size_t off = PW_HDR;
	if (cap < PW_HDR + 1)
		return 0;
	out[0] = 'E';
	if (!(off = put_field(out, cap, off, 'S', severity)) ||
	    !(off = put_field(out, cap, off, 'V', severity)) ||
	    !(off = put_field(out, cap, off, 'C', sqlstate)) ||
	    !(off = put_field(out, cap, off, 'M', message)))
		return 0;
	if (detail && !(off = put_field(out, cap, off, 'D', detail)))
		return 0;
	if (off + 1 > cap)
		return 0;
	out[off++] = 0;
	pw_put_be32(out + 1, (uint32_t)(off - 1));
	return off;
}

int pw_msg_error(struct pw_buf *b, char type, const char *severity, const char *sqlstate,
                 const char *message, const char *detail)
{
	uint8_t tmp[2048];
	size_t n = pw_msg_error_to(tmp, sizeof(tmp), severity, sqlstate, message, detail);
	if (!n)
		return -1;
	tmp[0] = (uint8_t)type;
	return pw_buf_insert(b, tmp, n);
}

int pw_msg_auth(struct pw_buf *b, uint32_t code, const void *payload, size_t len)
{
	uint8_t hdr[9];
	hdr[0] = 'R';
	pw_put_be32(hdr + 1, (uint32_t)(8 + len));
	pw_put_be32(hdr + 5, code);
	if (pw_buf_insert(b, hdr, sizeof(hdr)) < 0)
		return -1;
	return len ? pw_buf_insert(b, payload, len) : 0;
}

int pw_msg_raw(struct pw_buf *b, uint8_t type, const void *payload, size_t len)
{
	uint8_t hdr[5];
	size_t h = 0;
	if (type)
		hdr[h++] = type;
	pw_put_be32(hdr + h, (uint32_t)(4 + len));
	h += 4;
	if (pw_buf_insert(b, hdr, h) < 0)
		return -1;
	return len ? pw_buf_insert(b, payload, len) : 0;
}

uint8_t *pw_msg_small(struct pw_buf *b, uint32_t max, uint32_t *len, bool *bad)
{
	*bad = false;
	if (pw_buf_unscanned(b) < PW_HDR)
		return NULL;
	uint8_t *p = pw_buf_at_scan(b);
	*len = pw_be32(p + 1);
	if (*len < 4 || *len > max) {
		*bad = true;
		return NULL;
	}
	if (pw_buf_unscanned(b) < (size_t)*len + 1) {
		/* within the buffer's size (max is small): cannot fail */
		pw_buf_reserve_at_scan(b, (size_t)*len + 1);
		return NULL;
	}
	return p;
}

const char *pw_error_field(const uint8_t *body, size_t len, char code)
{
	size_t i = 0;
	while (i < len && body[i]) {
		char c = (char)body[i++];
		const uint8_t *z = memchr(body + i, 0, len - i);
		if (!z)
			return NULL;
		if (c == code)
			return (const char *)body + i;
		i = (size_t)(z - body) + 1;
	}
	return NULL;
}
