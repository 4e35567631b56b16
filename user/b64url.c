/* Strict base64url decoding (see b64url.h). */
#include <stdlib.h>

#include "pgward/b64url.h"

int pw_b64url_val(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '-')
		return 62;
	if (ch == '_')
		return 63;
	return -1;
}

/* out must hold n * 3 / 4 bytes. Returns the decoded length or -1. */
static long decode(const char *in, size_t n, uint8_t *out)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t i, o = 0;

	if (n % 4 == 1)
		return -1;
	for (i = 0; i < n; i++) {
		int v = pw_b64url_val((unsigned char)in[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* bits left over must be zero: a second spelling of the same bytes is refused */
	return acc ? -1 : (long)o;
}

uint8_t *pw_b64url_dup(const char *in, size_t n, size_t *outlen)
{
	uint8_t *buf = malloc(n * 3 / 4 + 1);
	long got;

	if (!buf)
		return NULL;
	got = decode(in, n, buf);
	if (got < 0) {
		free(buf);
		return NULL;
	}
	*outlen = (size_t)got;
	return buf;
}
