#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ctl.h"
#include "ctlproto.h"

#define CTLPROTO_NAME_MAX	64	/* bytes of a bad name quoted back */

struct ctlproto_cmd {
	const char		*name;
	enum ctl_command	 cmd;
	const char *const	*fields;	/* allowed besides "cmd" */
	int			(*parse)(json_t *, struct ctl_request *,
				    char *, size_t);
};

static int	ctlproto_put(json_t *, struct ctl_request *, char *, size_t);
static int	ctlproto_show(json_t *, struct ctl_request *, char *, size_t);
static int	ctlproto_outcome(json_t *, struct ctl_request *, char *,
		    size_t);
static int	ctlproto_log(json_t *, struct ctl_request *, char *, size_t);
static int	ctlproto_peer(json_t *, struct ctl_request *, char *, size_t);

static const char *const ctlproto_no_fields[] = { NULL };
static const char *const ctlproto_put_fields[] = {
	"key", "size", "sha256", "hops", "put_id", NULL
};
static const char *const ctlproto_show_fields[] = { "what", "prefix",
	NULL };
static const char *const ctlproto_outcome_fields[] = { "put_id", NULL };
static const char *const ctlproto_log_fields[] = { "level", NULL };
static const char *const ctlproto_peer_fields[] = { "action", "name", NULL };

static const struct ctlproto_cmd ctlproto_cmds[] = {
	{ "status",	CTL_CMD_STATUS,	ctlproto_no_fields,	NULL },
	{ "put",	CTL_CMD_PUT,	ctlproto_put_fields,	ctlproto_put },
	{ "show",	CTL_CMD_SHOW,	ctlproto_show_fields,	ctlproto_show },
	{ "monitor",	CTL_CMD_MONITOR, ctlproto_no_fields,	NULL },
	{ "outcome",	CTL_CMD_OUTCOME, ctlproto_outcome_fields,
	    ctlproto_outcome },
	{ "reload",	CTL_CMD_RELOAD,	ctlproto_no_fields,	NULL },
	{ "drain",	CTL_CMD_DRAIN,	ctlproto_no_fields,	NULL },
	{ "log",	CTL_CMD_LOG,	ctlproto_log_fields,	ctlproto_log },
	{ "peer",	CTL_CMD_PEER,	ctlproto_peer_fields,	ctlproto_peer },
};

static const char *const ctlproto_show_names[] = {
	"peers", "streams", "routes", "config", "stats", "puts", "store",
	NULL
};
/* In enum ctl_peer_action order. */
static const char *const ctlproto_peer_actions[] = {
	"disable", "enable", "drain", NULL
};
/* In enum log_level order (log.h). */
static const char *const ctlproto_level_names[] = {
	"warn", "info", "debug", NULL
};

#define CTLPROTO_NCMDS	(sizeof(ctlproto_cmds) / sizeof(ctlproto_cmds[0]))

static int
ctlproto_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * The reason goes back to the client inside a JSON string and into the
 * log, and may quote client bytes (or be cut in the middle of a UTF-8
 * sequence): keep it to printable ASCII so it is always valid.
 */
static int
ctlproto_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	size_t i;

	if (errlen == 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	for (i = 0; err[i] != '\0'; i++) {
		if ((unsigned char)err[i] < 0x20 ||
		    (unsigned char)err[i] > 0x7e)
			err[i] = '?';
	}
	return -1;
}

static int
ctlproto_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode exactly 2 * n hex digits from a JSON string into out. */
static int
ctlproto_hex(const json_t *v, uint8_t *out, size_t n)
{
	const char *s;
	size_t i;
	int hi, lo;

	if (!json_is_string(v) || json_string_length(v) != 2 * n)
		return -1;
	s = json_string_value(v);
	for (i = 0; i < n; i++) {
		if ((hi = ctlproto_nibble(s[2 * i])) == -1 ||
		    (lo = ctlproto_nibble(s[2 * i + 1])) == -1)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/*
 * A client's name to quote in a reason: cut to CTLPROTO_NAME_MAX bytes
 * and with NULs made visible.  out holds CTLPROTO_NAME_MAX + 4 bytes.
 */
static const char *
ctlproto_quote(const char *s, size_t len, char *out)
{
	size_t i, n = len < CTLPROTO_NAME_MAX ? len : CTLPROTO_NAME_MAX;

	for (i = 0; i < n; i++)
		out[i] = s[i] == '\0' ? '?' : s[i];
	if (n < len) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

static const struct ctlproto_cmd *
ctlproto_lookup(json_t *o, char *err, size_t errlen)
{
	const json_t *v = json_object_get(o, "cmd");
	char q[CTLPROTO_NAME_MAX + 4];
	const char *name;
	size_t i, len;

	if (!json_is_string(v)) {
		ctlproto_fail(err, errlen, "request has no \"cmd\" string");
		return NULL;
	}
	name = json_string_value(v);
	len = json_string_length(v);
	for (i = 0; i < CTLPROTO_NCMDS; i++) {
		if (strlen(ctlproto_cmds[i].name) == len &&
		    memcmp(ctlproto_cmds[i].name, name, len) == 0)
			return &ctlproto_cmds[i];
	}
	ctlproto_fail(err, errlen, "unknown command \"%s\"",
	    ctlproto_quote(name, len, q));
	return NULL;
}

static int
ctlproto_fields(json_t *o, const struct ctlproto_cmd *cmd, char *err,
    size_t errlen)
{
	char q[CTLPROTO_NAME_MAX + 4];
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach(o, k, v) {
		if (strcmp(k, "cmd") == 0)
			continue;
		for (i = 0; cmd->fields[i] != NULL; i++)
			if (strcmp(cmd->fields[i], k) == 0)
				break;
		if (cmd->fields[i] == NULL)
			return ctlproto_fail(err, errlen,
			    "unknown field \"%s\" for %s",
			    ctlproto_quote(k, strlen(k), q),
			    cmd->name);
	}
	return 0;
}

static int
ctlproto_put(json_t *o, struct ctl_request *req, char *err, size_t errlen)
{
	struct ctl_put_req *p = &req->u.put;
	json_t *key, *size, *sha, *hops, *id;
	size_t klen;

	key = json_object_get(o, "key");
	size = json_object_get(o, "size");
	sha = json_object_get(o, "sha256");
	hops = json_object_get(o, "hops");
	id = json_object_get(o, "put_id");
	if (!json_is_string(key) || !json_is_integer(size) ||
	    !json_is_string(sha))
		return ctlproto_fail(err, errlen, "put needs key (string), "
		    "size (integer), sha256 (hex)");
	klen = json_string_length(key);
	if (klen == 0 || klen > WIRE_MAX_KEY)
		return ctlproto_fail(err, errlen, "key must be 1..%d bytes",
		    WIRE_MAX_KEY);
	if (memchr(json_string_value(key), '\0', klen) != NULL)
		return ctlproto_fail(err, errlen, "key must not contain NUL");
	if (json_integer_value(size) < 0)
		return ctlproto_fail(err, errlen, "size must not be negative");
	if (hops != NULL && (!json_is_integer(hops) ||
	    json_integer_value(hops) < 0 || json_integer_value(hops) > 255))
		return ctlproto_fail(err, errlen, "hops must be 0..255");
	if (ctlproto_hex(sha, p->sha256, sizeof(p->sha256)) == -1)
		return ctlproto_fail(err, errlen,
		    "sha256 must be 64 hex digits");
	if (id != NULL && ctlproto_hex(id, p->put_id, sizeof(p->put_id)) == -1)
		return ctlproto_fail(err, errlen,
		    "put_id must be 32 hex digits");
	if ((p->key = malloc(klen + 1)) == NULL)
		return ctlproto_fail(err, errlen, "out of memory");
	memcpy(p->key, json_string_value(key), klen + 1);
	p->key_len = klen;
	p->size = (uint64_t)json_integer_value(size);
	p->hops = hops != NULL ? (unsigned int)json_integer_value(hops) :
	    CTL_DEFAULT_HOPS;
	p->has_put_id = id != NULL;
	return 0;
}

/* The index of a JSON string in names, or -1. */
static int
ctlproto_word(const json_t *v, const char *const *names)
{
	int i;

	if (!json_is_string(v))
		return -1;
	for (i = 0; names[i] != NULL; i++)
		if (strlen(names[i]) == json_string_length(v) &&
		    strcmp(names[i], json_string_value(v)) == 0)
			return i;
	return -1;
}

static int
ctlproto_show(json_t *o, struct ctl_request *req, char *err, size_t errlen)
{
	int	 i = ctlproto_word(json_object_get(o, "what"),
		    ctlproto_show_names);
	json_t	*p = json_object_get(o, "prefix");

	if (i == -1)
		return ctlproto_fail(err, errlen, "show needs what: peers, "
		    "streams, routes, config, stats, puts or store");
	req->u.show = (enum ctl_show)i;
	if (p == NULL)
		return 0;
	if (req->u.show != CTL_SHOW_STORE)
		return ctlproto_fail(err, errlen, "prefix is for show store "
		    "only");
	if (!json_is_string(p) || json_string_length(p) > WIRE_MAX_KEY)
		return ctlproto_fail(err, errlen, "prefix must be a string "
		    "of at most %d bytes", WIRE_MAX_KEY);
	req->prefix_len = json_string_length(p);
	if ((req->prefix = malloc(req->prefix_len + 1)) == NULL)
		return ctlproto_fail(err, errlen, "out of memory");
	memcpy(req->prefix, json_string_value(p), req->prefix_len + 1);
	return 0;
}

static int
ctlproto_outcome(json_t *o, struct ctl_request *req, char *err,
    size_t errlen)
{
	if (ctlproto_hex(json_object_get(o, "put_id"), req->u.put_id,
	    sizeof(req->u.put_id)) == -1)
		return ctlproto_fail(err, errlen,
		    "outcome needs put_id: 32 hex digits");
	return 0;
}

static int
ctlproto_log(json_t *o, struct ctl_request *req, char *err, size_t errlen)
{
	int i = ctlproto_word(json_object_get(o, "level"),
	    ctlproto_level_names);

	if (i == -1)
		return ctlproto_fail(err, errlen, "log needs level: warn, info "
		    "or debug");
	req->u.level = i;
	return 0;
}

static int
ctlproto_peer(json_t *o, struct ctl_request *req, char *err, size_t errlen)
{
	struct ctl_peer_req *p = &req->u.peer;
	const json_t *name = json_object_get(o, "name");
	int i = ctlproto_word(json_object_get(o, "action"),
	    ctlproto_peer_actions);
	size_t len;

	if (i == -1)
		return ctlproto_fail(err, errlen, "peer needs action: disable, "
		    "enable or drain");
	if (!json_is_string(name))
		return ctlproto_fail(err, errlen, "peer needs name (string)");
	len = json_string_length(name);
	if (len == 0 || len > CTL_PEER_NAME_MAX)
		return ctlproto_fail(err, errlen, "peer name must be 1..%d "
		    "bytes", CTL_PEER_NAME_MAX);
	if (memchr(json_string_value(name), '\0', len) != NULL)
		return ctlproto_fail(err, errlen, "peer name must not contain "
		    "NUL");
	p->action = (enum ctl_peer_action)i;
	memcpy(p->name, json_string_value(name), len);
	p->name[len] = '\0';
	return 0;
}

const char *
ctl_level_name(int level)
{
	if (level < 0 || level > 2)
		return "?";
	return ctlproto_level_names[level];
}

int
ctl_parse_request(const char *line, size_t len, struct ctl_request *req,
    char *err, size_t errlen)
{
	const struct ctlproto_cmd *cmd;
	json_error_t jerr;
	json_t *o = NULL;
	int rv = -1;

	memset(req, 0, sizeof(*req));
	if (len > CTL_MAX_LINE)
		return ctlproto_fail(err, errlen,
		    "request line longer than %d bytes", CTL_MAX_LINE);
	/*
	 * \u0000 is let through the parser so that a key holding one gets
	 * a clear answer rather than a parser message.
	 */
	o = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
	    &jerr);
	if (o == NULL) {
		ctlproto_fail(err, errlen, "malformed request: %s", jerr.text);
		goto done;
	}
	if (!json_is_object(o)) {
		ctlproto_fail(err, errlen, "malformed request: not an object");
		goto done;
	}
	if ((cmd = ctlproto_lookup(o, err, errlen)) == NULL ||
	    ctlproto_fields(o, cmd, err, errlen) == -1)
		goto done;
	req->cmd = cmd->cmd;
	if (cmd->parse != NULL && cmd->parse(o, req, err, errlen) == -1)
		goto done;
	rv = 0;
 done:
	if (rv == -1)
		ctl_request_free(req);
	json_decref(o);
	return rv;
}

void
ctl_request_free(struct ctl_request *req)
{
	if (req == NULL)
		return;
	if (req->cmd == CTL_CMD_PUT)
		free(req->u.put.key);
	free(req->prefix);
	memset(req, 0, sizeof(*req));
}
