/*
 * stats: the counters, and the two renderings of the stats table (the
 * show stats JSON object and the Prometheus text).  Both walk the same
 * rows and read each value through stats_item_u64 (or _value for the
 * uptime), so a row cannot be
 * on one surface and not the other, or read differently.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "stats.h"
#include "wire.h"

struct stats	 stats;

const double	 stats_dur_bounds[STATS_DUR_BUCKETS] = {
	0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300
};

/* A response being built; failed is set once any append fails. */
struct stats_out {
	struct evbuffer	*buf;
	int		 failed;
};

void
stats_duration(double secs)
{
	int i;

	stats.dur_count++;
	stats.dur_sum += secs;
	for (i = 0; i < STATS_DUR_BUCKETS; i++)
		if (secs <= stats_dur_bounds[i])
			stats.dur_buckets[i]++;
}

/* Item i < STATS_CODES - 1 is code i + 1; the last one is "unknown". */
const char *
stats_code_name(const struct stats_entry *e, unsigned int i)
{
	const char *n;

	(void)e;
	if (i + 1 >= STATS_CODES)
		return "unknown";
	n = wire_abort_name(i + 1);
	return strcmp(n, "unknown") == 0 ? NULL : n;
}

/* "unknown" sums slot 0 (codes beyond the table) and unnamed codes. */
uint64_t
stats_code_at(const struct stats_entry *e, unsigned int i)
{
	uint64_t	 sum;
	unsigned int	 c;

	if (i + 1 < STATS_CODES)
		return e->value[i + 1];
	sum = e->value[0];
	for (c = 1; c < STATS_CODES; c++)
		if (stats_code_name(e, c - 1) == NULL)
			sum += e->value[c];
	return sum;
}

static int
stats_is_vec(const struct stats_entry *e)
{
	return e->n > 0 || e->count != NULL;
}

unsigned int
stats_items(const struct stats_entry *e)
{
	if (e->count != NULL)
		return e->count();
	return e->n > 0 ? e->n : 1;
}

const char *
stats_item_name(const struct stats_entry *e, unsigned int i)
{
	if (!stats_is_vec(e))
		return e->lvalue;
	return e->name(e, i);
}

uint64_t
stats_item_u64(const struct stats_entry *e, unsigned int i)
{
	if (e->type == STATS_HISTOGRAM)
		return stats.dur_count;
	if (stats_is_vec(e))
		return e->at != NULL ? e->at(e, i) : e->value[i];
	if (e->getf != NULL)
		return (uint64_t)e->getf();
	if (e->get != NULL)
		return e->get();
	return *e->value;
}

double
stats_item_value(const struct stats_entry *e, unsigned int i)
{
	if (!stats_is_vec(e) && e->getf != NULL)
		return e->getf();
	return (double)stats_item_u64(e, i);
}

static json_t *
stats_json_value(const struct stats_entry *e, unsigned int i)
{
	if (e->getf != NULL)
		return json_real(stats_item_value(e, i));
	return json_integer((json_int_t)stats_item_u64(e, i));
}

/* The object at path "a.b.c" under root, made as needed; *leaf = "c". */
static json_t *
stats_json_parent(json_t *root, const char *path, const char **leaf)
{
	char		 part[64];
	const char	*dot;
	json_t		*o = root, *sub;
	size_t		 len;

	while ((dot = strchr(path, '.')) != NULL) {
		len = (size_t)(dot - path);
		if (len >= sizeof(part))
			return NULL;
		memcpy(part, path, len);
		part[len] = '\0';
		if ((sub = json_object_get(o, part)) == NULL) {
			if ((sub = json_object()) == NULL ||
			    json_object_set_new(o, part, sub) == -1)
				return NULL;
		}
		o = sub;
		path = dot + 1;
	}
	*leaf = path;
	return o;
}

static int
stats_json_row(json_t *root, const struct stats_entry *e)
{
	const char	*leaf, *name;
	json_t		*parent, *v;
	unsigned int	 i;

	if ((parent = stats_json_parent(root, e->json, &leaf)) == NULL)
		return -1;
	if (!stats_is_vec(e))
		return json_object_set_new(parent, leaf, stats_json_value(e, 0));
	if ((v = json_object()) == NULL ||
	    json_object_set_new(parent, leaf, v) == -1)
		return -1;
	for (i = 0; i < stats_items(e); i++)
		if ((name = stats_item_name(e, i)) != NULL &&
		    json_object_set_new(v, name, stats_json_value(e, i)) == -1)
			return -1;
	return 0;
}

json_t *
stats_json(const struct stats_entry *tab, size_t n)
{
	json_t	*root;
	size_t	 i;

	if ((root = json_object()) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (stats_json_row(root, &tab[i]) == -1) {
			json_decref(root);
			return NULL;
		}
	return root;
}

static void __attribute__((format(printf, 2, 3)))
stats_printf(struct stats_out *o, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	if (evbuffer_add_vprintf(o->buf, fmt, ap) == -1)
		o->failed = 1;
	va_end(ap);
}

static const char *
stats_type_name(enum stats_type t)
{
	switch (t) {
	case STATS_COUNTER:
		return "counter";
	case STATS_GAUGE:
		return "gauge";
	case STATS_HISTOGRAM:
		return "histogram";
	}
	return "untyped";
}

static void
stats_prom_histogram(struct stats_out *o, const struct stats_entry *e)
{
	unsigned int	 i;

	for (i = 0; i < STATS_DUR_BUCKETS; i++)
		stats_printf(o, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", e->prom,
		    stats_dur_bounds[i], stats.dur_buckets[i]);
	stats_printf(o, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", e->prom,
	    stats.dur_count);
	stats_printf(o, "%s_sum %.9f\n", e->prom, stats.dur_sum);
	stats_printf(o, "%s_count %" PRIu64 "\n", e->prom, stats.dur_count);
}

/* key="value", the value escaped as the text format wants. */
static void
stats_prom_label(struct stats_out *o, const char *key, const char *v)
{
	stats_printf(o, "%s=\"", key);
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			stats_printf(o, "\\%c", *v);
		else if (*v == '\n')
			stats_printf(o, "\\n");
		else
			stats_printf(o, "%c", *v);
	}
	stats_printf(o, "\"");
}

static void
stats_prom_sample(struct stats_out *o, const struct stats_entry *e,
    unsigned int i)
{
	const char	*name = stats_item_name(e, i);

	if (e->label != NULL && name == NULL)
		return;
	if (e->label != NULL) {
		stats_printf(o, "%s{", e->prom);
		stats_prom_label(o, e->label, name);
		if (e->fkey != NULL) {
			stats_printf(o, ",");
			stats_prom_label(o, e->fkey, e->fvalue);
		}
		stats_printf(o, "} ");
	} else
		stats_printf(o, "%s ", e->prom);
	if (e->getf != NULL)
		stats_printf(o, "%.3f\n", stats_item_value(e, i));
	else
		stats_printf(o, "%" PRIu64 "\n", stats_item_u64(e, i));
}

int
stats_prom(struct evbuffer *buf, const struct stats_entry *tab, size_t n)
{
	struct stats_out	 o = { buf, 0 };
	const struct stats_entry *e;
	size_t			 r;
	unsigned int		 i;

	for (r = 0; r < n; r++) {
		e = &tab[r];
		/* One HELP and TYPE per family: its first row. */
		if (r == 0 || strcmp(tab[r - 1].prom, e->prom) != 0)
			stats_printf(&o, "# HELP %s %s\n# TYPE %s %s\n",
			    e->prom, e->help, e->prom,
			    stats_type_name(e->type));
		if (e->type == STATS_HISTOGRAM) {
			stats_prom_histogram(&o, e);
			continue;
		}
		for (i = 0; i < stats_items(e); i++)
			stats_prom_sample(&o, e, i);
	}
	return o.failed ? -1 : 0;
}
