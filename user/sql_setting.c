/* Setting values as the server reads them: see include/pgward/sql_setting.h. */
#include "pgward/sql_setting.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* Appends one schema name to a search_path value; false when it does not fit. */
bool pw_sql_value_add(struct pw_sql_setting *s, const char *name, size_t n)
{
	if (n >= PW_SQL_NAMELEN)
		n = PW_SQL_NAMELEN - 1; /* the server truncates identifiers the same way */
	if ((size_t)s->value_len + n + 1 > sizeof(s->value))
		return false;
	memcpy(s->value + s->value_len, name, n);
	s->value[s->value_len + n] = 0;
	s->value_len = (uint16_t)(s->value_len + n + 1);
	return true;
}

/* set_config('search_path', 'a, "B"', ...): the text is split as the server splits a list
 * of identifiers (SplitIdentifierString): commas, blanks around names, double quotes keep
 * case and commas ("" is a quote), unquoted names are folded to lower case. */
bool pw_sql_value_split(struct pw_sql_setting *s, const char *v)
{
	char name[PW_SQL_NAMELEN * 4];

	for (;;) {
		size_t n = 0;

		while (isspace((unsigned char)*v))
			v++;
		if (*v == '"') {
			for (v++;; v++) {
				if (!*v)
					return false; /* unterminated: the server refuses it */
				if (*v == '"') {
					if (v[1] != '"')
						break;
					v++;
				}
				if (n < sizeof(name) - 1)
					name[n++] = *v;
			}
			v++;
		} else {
			while (*v && *v != ',' && !isspace((unsigned char)*v)) {
				if (n < sizeof(name) - 1)
					name[n++] = (char)tolower((unsigned char)*v);
				v++;
			}
			if (n == 0)
				return *v == 0 && s->value_len == 0; /* '' is an empty path */
		}
		if (!pw_sql_value_add(s, name, n))
			return false;
		while (isspace((unsigned char)*v))
			v++;
		if (!*v)
			return true;
		if (*v++ != ',')
			return false;
	}
}

int pw_sql_split_path(const char *text, struct pw_sql_setting *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "search_path");
	out->value_known = pw_sql_value_split(out, text);
	if (!out->value_known)
		out->value_len = 0;
	return out->value_known ? 0 : -1;
}

int pw_sql_quote_ident(const char *name, char *out, size_t cap)
{
	size_t o = 0;

	if (cap < 3)
		return -1;
	out[o++] = '"';
	for (; *name; name++) {
		if (o + (*name == '"' ? 2 : 1) + 2 > cap)
			return -1;
		if (*name == '"')
			out[o++] = '"';
		out[o++] = *name;
	}
	out[o++] = '"';
	out[o] = 0;
	return (int)o;
}
