/* The eBPF programs' events, as pgwardd logs them: see include/pgward/loader_events.h. */
#include "pgward/loader_events.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "pgward/log.h"

static const char *event_name(uint32_t type)
{
	switch (type) {
	case PW_EV_REDIRECT:
		return "redirect";
	case PW_EV_REFUSED:
		return "refused";
	case PW_EV_BYPASS:
		return "bypass";
	case PW_EV_DENIED:
		return "denied";
	case PW_EV_BIND:
		return "bind-refused";
	case PW_EV_UNIX_REFUSED:
		return "unix-refused";
	}
	return "event";
}

static void format_dst(const struct pw_conn_info *in, char *out, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";
	if (in->family == AF_UNIX) {
		snprintf(out, len, "unix:.s.PGSQL.%u", ntohs(in->orig_port));
	} else if (in->family == AF_INET6) {
		inet_ntop(AF_INET6, in->orig_addr, a, sizeof(a));
		snprintf(out, len, "[%s]:%u", a, ntohs(in->orig_port));
	} else {
		inet_ntop(AF_INET, in->orig_addr, a, sizeof(a));
		snprintf(out, len, "%s:%u", a, ntohs(in->orig_port));
	}
}

void pw_event_log(const struct pw_event *ev)
{
	const struct pw_conn_info *in = &ev->info;
	char dst[INET6_ADDRSTRLEN + 16], anc[PW_MAX_ANCESTORS * (PW_COMM_LEN * 4 + 24)] = "";
	format_dst(in, dst, sizeof(dst));
	size_t off = 0;
	for (int i = 0; i < in->n_ancestors && i < PW_MAX_ANCESTORS; i++)
		off += snprintf(anc + off, sizeof(anc) - off, "%s%s(%u)", i ? "<-" : "",
		                PW_QN(in->anc_comm[i], strnlen(in->anc_comm[i], PW_COMM_LEN)),
		                in->anc_pid[i]);
	/* process names are the agent's to choose: quoted and escaped */
	pw_info("%s pid=%u tgid=%u uid=%u gid=%u comm=%s cgroup=%" PRIu64 " dst=%s ancestors=%s",
	        event_name(ev->type), in->pid, in->tgid, in->uid, in->gid,
	        PW_QN(in->comm, strnlen(in->comm, PW_COMM_LEN)), (uint64_t)in->cgroup_id, dst,
	        anc[0] ? anc : "-");
}
