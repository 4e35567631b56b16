/* The audit trail's chain. See include/pgward/audit_chain.h. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "pgward/audit_chain.h"
#include "pgward/log.h"

static int sha256_hex(const void *data, size_t n, char *hex)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int len = 0;
	if (EVP_Digest(data, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32)
		return -1;
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
	return 0;
}

int pw_audit_line(struct pw_jw *out, uint64_t seq, const char *host_json, long pid,
                  const char *body, size_t blen, const char *prev, char *hash)
{
	size_t start = out->len;
	char head[96];
	int n = snprintf(head, sizeof(head), "{\"v\":%d,\"seq\":%llu,\"host\":", PW_AUDIT_VERSION,
	                 (unsigned long long)seq);
	pw_jw_append(out, head, (size_t)n);
	pw_jw_append(out, host_json, strlen(host_json));
	n = snprintf(head, sizeof(head), ",\"pid\":%ld,", pid);
	pw_jw_append(out, head, (size_t)n);
	pw_jw_append(out, body, blen);
	pw_jw_append(out, ",\"prev\":\"", 9);
	pw_jw_append(out, prev, PW_AUDIT_HASH_HEX);
	pw_jw_append(out, "\"", 1);
	char h[PW_AUDIT_HASH_HEX + 1];
	if (!pw_jw_ok(out) || sha256_hex(out->p + start, out->len - start, h) < 0) {
		out->len = start;
		out->oom = false;
		return -1;
	}
	pw_jw_append(out, ",\"hash\":\"", 9);
	pw_jw_append(out, h, PW_AUDIT_HASH_HEX);
	pw_jw_append(out, "\"}\n", 3);
	if (!pw_jw_ok(out)) {
		out->len = start;
		out->oom = false;
		return -1;
	}
	out->comma = false;
	memcpy(hash, h, PW_AUDIT_HASH_HEX + 1);
	return 0;
}

static bool hex64(const char *s)
{
	for (int i = 0; i < PW_AUDIT_HASH_HEX; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int pw_audit_check_line(const char *line, size_t len, uint64_t *seq, char *prev, char *hash,
                        char *why, size_t whylen)
{
	static const char tail[] = ",\"hash\":\"";
	size_t tl = sizeof(tail) - 1;
	size_t foot = tl + PW_AUDIT_HASH_HEX + 2; /* ,"hash":"<hex>"} */
	if (len < foot + 2 || line[0] != '{' || memcmp(line + len - foot, tail, tl) != 0 ||
	    memcmp(line + len - 2, "\"}", 2) != 0 || !hex64(line + len - foot + tl)) {
		pw_errf(why, whylen, "not a record of the trail (no hash at its end)");
		return -1;
	}
	const char *given = line + len - foot + tl;
	char h[PW_AUDIT_HASH_HEX + 1];
	if (sha256_hex(line, len - foot, h) < 0) {
		pw_errf(why, whylen, "cannot compute SHA-256");
		return -1;
	}
	if (memcmp(h, given, PW_AUDIT_HASH_HEX) != 0) {
		pw_errf(why, whylen, "its hash does not match its bytes (the record was edited)");
		return -1;
	}
	json_error_t jerr;
	json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j || !json_is_object(j)) {
		pw_errf(why, whylen, "not one JSON object: %s", j ? "not an object" : jerr.text);
		json_decref(j);
		return -1;
	}
	json_t *v = json_object_get(j, "v"), *s = json_object_get(j, "seq"),
	       *p = json_object_get(j, "prev");
	int rc = -1;
	if (!json_is_integer(v) || json_integer_value(v) != PW_AUDIT_VERSION)
		pw_errf(why, whylen, "not version %d of the trail", PW_AUDIT_VERSION);
	else if (!json_is_integer(s) || json_integer_value(s) < 1)
		pw_errf(why, whylen, "no seq");
	else if (!json_is_string(p) || json_string_length(p) != PW_AUDIT_HASH_HEX ||
	         !hex64(json_string_value(p)))
		pw_errf(why, whylen, "no prev");
	else if (!json_is_string(json_object_get(j, "type")) ||
	         !json_is_string(json_object_get(j, "ts")))
		pw_errf(why, whylen, "no type or ts");
	else {
		*seq = (uint64_t)json_integer_value(s);
		memcpy(prev, json_string_value(p), PW_AUDIT_HASH_HEX + 1);
		memcpy(hash, h, PW_AUDIT_HASH_HEX + 1);
		rc = 0;
	}
	json_decref(j);
	return rc;
}
