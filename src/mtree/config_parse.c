/*
 * Config loader, step 1: turn the JSON document into region and address
 * space records, rejecting every malformed field with a sentence that
 * names the region (by id) and the field. See docs/config.md.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mtree/config_internal.h"
#include "util/alloc.h"

static const char *const region_fields[] = {
	"id", "name", "kind", "size", "parent", "addr", "priority",
	"alias-of", "alias-offset", "enabled", "readonly", NULL,
};
static const char *const space_fields[] = { "name", "root", NULL };
static const char *const top_fields[] = { "address-spaces", "regions", NULL };

static const struct {
	const char *word;
	mv_region_kind kind;
} kinds[] = {
	{ "container", MV_REGION_CONTAINER },
	{ "ram", MV_REGION_RAM },
	{ "rom", MV_REGION_ROM },
	{ "io", MV_REGION_IO },
	{ "romd", MV_REGION_ROMD },
	{ "alias", MV_REGION_ALIAS },
	{ "reservation", MV_REGION_RESERVATION },
};

int cfg_fail(struct cfg_doc *d, int code, const char *fmt, ...)
{
	char msg[sizeof(d->err->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return mv_error_set(d->err, code, "%s: %s", d->src, msg);
}

int cfg_region_fail(struct cfg_doc *d, size_t i, int code, const char *fmt, ...)
{
	char msg[sizeof(d->err->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (d->regions[i].id)
		return mv_error_set(d->err, code, "%s: region \"%s\": %s", d->src,
				    d->regions[i].id, msg);
	return mv_error_set(d->err, code, "%s: regions[%zu]: %s", d->src, i, msg);
}

const char *cfg_hex(char *buf, size_t len, mv_u128 v)
{
	if (v >= MV_2_64)
		snprintf(buf, len, "0x1%016llx", (unsigned long long)(uint64_t)v);
	else
		snprintf(buf, len, "0x%llx", (unsigned long long)v);
	return buf;
}

/*
 * A field reader reports errors about "<what>" (the region or address
 * space label), so one set of helpers serves both kinds of entry.
 */
struct entry {
	struct cfg_doc *d;
	json_t *obj;
	const char *what;        /* e.g. region "ram" */
};

static int entry_fail(struct entry *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int entry_fail(struct entry *e, int code, const char *fmt, ...)
{
	char msg[sizeof(e->d->err->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return cfg_fail(e->d, code, "%s: %s", e->what, msg);
}

/* Reject keys outside @allowed: a typo must not silently mean a default. */
static int check_keys(struct entry *e, const char *const *allowed)
{
	const char *key;
	json_t *val;

	json_object_foreach(e->obj, key, val) {
		size_t i;

		for (i = 0; allowed[i] && strcmp(allowed[i], key); i++)
			;
		if (!allowed[i])
			return entry_fail(e, -EINVAL, "unknown field \"%s\"", key);
	}
	return 0;
}

/* String field @key; *out stays untouched when absent and optional. */
static int get_string(struct entry *e, const char *key, bool required, const char **out)
{
	json_t *v = json_object_get(e->obj, key);

	if (!v)
		return required ? entry_fail(e, -EINVAL, "missing field \"%s\"", key) : 0;
	if (!json_is_string(v))
		return entry_fail(e, -EINVAL, "field \"%s\" must be a string", key);
	*out = json_string_value(v);
	if (!**out)
		return entry_fail(e, -EINVAL, "field \"%s\" must not be empty", key);
	return 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * "0x" followed by hex digits. -EINVAL on bad syntax, -ERANGE when the
 * value exceeds 2^64 (leading zeros are fine).
 */
static int parse_hex(const char *s, mv_u128 *out)
{
	bool too_big = false;
	mv_u128 v = 0;

	if (s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || !s[2])
		return -EINVAL;
	for (s += 2; *s; s++) {
		int digit = hex_digit(*s);

		if (digit < 0)
			return -EINVAL;
		if (!too_big)
			v = v * 16 + (unsigned)digit;
		too_big |= v > MV_2_64;
	}
	*out = v;
	return too_big ? -ERANGE : 0;
}

/* Hex-string field @key, at most @max; *out untouched when absent. */
static int get_hex(struct entry *e, const char *key, bool required, mv_u128 max,
		   mv_u128 *out)
{
	json_t *v = json_object_get(e->obj, key);
	const char *s;
	int ret;

	if (!v)
		return required ? entry_fail(e, -EINVAL, "missing field \"%s\"", key) : 0;
	if (!json_is_string(v))
		return entry_fail(e, -EINVAL,
				  "field \"%s\" must be a hex string such as \"0x1000\"", key);
	s = json_string_value(v);
	ret = parse_hex(s, out);
	if (ret == -EINVAL)
		return entry_fail(e, -EINVAL,
				  "field \"%s\" is not a hex number such as \"0x1000\": \"%s\"",
				  key, s);
	if (ret || *out > max)
		return entry_fail(e, -EINVAL, "field \"%s\" is too large: %s (the limit is %s)",
				  key, s, max == MV_2_64 ? "2^64" : "2^64 - 1");
	return 0;
}

/* 64-bit hex field (an address or offset), default 0. */
static int get_u64(struct entry *e, const char *key, uint64_t *out)
{
	mv_u128 v = 0;
	int ret = get_hex(e, key, false, MV_2_64 - 1, &v);

	*out = (uint64_t)v;
	return ret;
}

static int get_bool(struct entry *e, const char *key, bool *out, bool *present)
{
	json_t *v = json_object_get(e->obj, key);

	if (present)
		*present = v != NULL;
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return entry_fail(e, -EINVAL, "field \"%s\" must be true or false", key);
	*out = json_is_true(v);
	return 0;
}

static int get_priority(struct entry *e, int *out)
{
	json_t *v = json_object_get(e->obj, "priority");
	json_int_t p;

	if (!v)
		return 0;
	if (!json_is_integer(v))
		return entry_fail(e, -EINVAL, "field \"priority\" must be an integer");
	p = json_integer_value(v);
	if (p < INT_MIN || p > INT_MAX)
		return entry_fail(e, -EINVAL, "field \"priority\" is out of range: %lld",
				  (long long)p);
	*out = (int)p;
	return 0;
}

static int get_kind(struct entry *e, mv_region_kind *out)
{
	const char *word = NULL;
	int ret = get_string(e, "kind", true, &word);

	if (ret)
		return ret;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (!strcmp(kinds[i].word, word)) {
			*out = kinds[i].kind;
			return 0;
		}
	}
	return entry_fail(e, -EINVAL, "field \"kind\" is \"%s\", expected one of container, "
			  "ram, rom, io, romd, alias, reservation", word);
}

/* Fields whose meaning depends on the kind or on having a parent. */
static int check_combination(struct entry *e, const struct cfg_region *r)
{
	char a[24], b[24];

	if (r->kind != MV_REGION_ALIAS) {
		if (r->alias_id)
			return entry_fail(e, -EINVAL, "field \"alias-of\" is only valid for kind alias");
		if (json_object_get(e->obj, "alias-offset"))
			return entry_fail(e, -EINVAL,
					  "field \"alias-offset\" is only valid for kind alias");
	} else if (!r->alias_id) {
		return entry_fail(e, -EINVAL, "missing field \"alias-of\"");
	}
	if (!r->parent_id && r->addr)
		return entry_fail(e, -EINVAL, "field \"addr\" is set but the region has no \"parent\"");
	if (!r->parent_id && r->priority)
		return entry_fail(e, -EINVAL,
				  "field \"priority\" is set but the region has no \"parent\"");
	if ((mv_u128)r->addr + r->size > MV_2_64)
		return entry_fail(e, -EINVAL, "fields \"addr\" %s + \"size\" %s end beyond 2^64",
				  cfg_hex(a, sizeof(a), r->addr), cfg_hex(b, sizeof(b), r->size));
	return 0;
}

/* RAM, ROM and ROM devices get a RAM block: whole pages, sane size. */
static int check_ram_size(struct entry *e, const struct cfg_region *r)
{
	char a[24];

	if (r->kind != MV_REGION_RAM && r->kind != MV_REGION_ROM && r->kind != MV_REGION_ROMD)
		return 0;
	if (r->size > CFG_MAX_RAM_SIZE)
		return entry_fail(e, -EINVAL, "field \"size\" %s is larger than the 1 TiB "
				  "allowed for RAM-backed regions", cfg_hex(a, sizeof(a), r->size));
	if (r->size % CFG_RAM_ALIGN)
		return entry_fail(e, -EINVAL, "field \"size\" %s is not a multiple of 4 KiB, "
				  "as RAM-backed regions must be", cfg_hex(a, sizeof(a), r->size));
	return 0;
}

/* The fields of a region (id and name are already read). */
static int parse_region_fields(struct entry *e, struct cfg_region *r)
{
	int ret;

	if ((ret = check_keys(e, region_fields)) ||
	    (ret = get_kind(e, &r->kind)) ||
	    (ret = get_hex(e, "size", true, MV_2_64, &r->size)) ||
	    (ret = get_string(e, "parent", false, &r->parent_id)) ||
	    (ret = get_u64(e, "addr", &r->addr)) ||
	    (ret = get_priority(e, &r->priority)) ||
	    (ret = get_string(e, "alias-of", false, &r->alias_id)) ||
	    (ret = get_u64(e, "alias-offset", &r->alias_offset)) ||
	    (ret = get_bool(e, "enabled", &r->enabled, NULL)) ||
	    (ret = get_bool(e, "readonly", &r->readonly, &r->has_readonly)))
		return ret;
	if (!r->size)
		return entry_fail(e, -EINVAL, "field \"size\" must not be 0");
	if ((ret = check_ram_size(e, r)))
		return ret;
	return check_combination(e, r);
}

static int parse_region(struct cfg_doc *d, size_t i, json_t *obj)
{
	struct cfg_region *r = &d->regions[i];
	char what[sizeof(d->err->msg)];
	struct entry e = { d, obj, what };
	int ret;

	r->enabled = true;
	r->parent = r->target = CFG_NONE;
	snprintf(what, sizeof(what), "regions[%zu]", i);
	if (!json_is_object(obj))
		return entry_fail(&e, -EINVAL, "must be a JSON object");
	/* The id names the region in every later message, so read it first. */
	if ((ret = get_string(&e, "id", false, &r->id)))
		return ret;
	if (r->id)
		snprintf(what, sizeof(what), "region \"%s\"", r->id);
	if ((ret = get_string(&e, "name", true, &r->name)))
		return ret;
	if (!r->id) {
		r->id = r->name;
		snprintf(what, sizeof(what), "region \"%s\"", r->id);
	}
	return parse_region_fields(&e, r);
}

static int parse_space(struct cfg_doc *d, size_t i, json_t *obj)
{
	struct cfg_space *s = &d->spaces[i];
	char what[sizeof(d->err->msg)];
	struct entry e = { d, obj, what };
	int ret;

	s->root = CFG_NONE;
	snprintf(what, sizeof(what), "address-spaces[%zu]", i);
	if (!json_is_object(obj))
		return entry_fail(&e, -EINVAL, "must be a JSON object");
	if ((ret = get_string(&e, "name", true, &s->name)))
		return ret;
	snprintf(what, sizeof(what), "address space \"%s\"", s->name);
	if ((ret = check_keys(&e, space_fields)))
		return ret;
	return get_string(&e, "root", true, &s->root_id);
}

/* The array member @key of the top-level object, allocated records for it. */
static int top_array(struct cfg_doc *d, const char *key, size_t elem, void **recs,
		     size_t *nr, json_t **arr)
{
	*arr = json_object_get(d->json, key);
	if (!*arr)
		return cfg_fail(d, -EINVAL, "missing field \"%s\" at the top level", key);
	if (!json_is_array(*arr))
		return cfg_fail(d, -EINVAL, "field \"%s\" must be an array", key);
	*nr = json_array_size(*arr);
	*recs = mv_zalloc(NULL, (*nr ? *nr : 1) * elem);
	if (!*recs)
		return cfg_fail(d, -ENOMEM, "out of memory reading \"%s\"", key);
	return 0;
}

/**
 * cfg_parse - read and check every field of the document
 * @d: document with d->json loaded
 *
 * Fills d->regions and d->spaces (allocated here, freed by the caller).
 * Returns 0 or a negative errno with d->err set.
 */
int cfg_parse(struct cfg_doc *d)
{
	struct entry top = { d, d->json, "top level" };
	json_t *regions, *spaces;
	int ret;

	if (!json_is_object(d->json))
		return cfg_fail(d, -EINVAL, "the top level must be a JSON object");
	if ((ret = check_keys(&top, top_fields)))
		return ret;
	ret = top_array(d, "regions", sizeof(*d->regions), (void **)&d->regions,
			&d->nr_regions, &regions);
	if (ret)
		return ret;
	ret = top_array(d, "address-spaces", sizeof(*d->spaces), (void **)&d->spaces,
			&d->nr_spaces, &spaces);
	if (ret)
		return ret;
	for (size_t i = 0; i < d->nr_regions; i++)
		if ((ret = parse_region(d, i, json_array_get(regions, i))))
			return ret;
	for (size_t i = 0; i < d->nr_spaces; i++)
		if ((ret = parse_space(d, i, json_array_get(spaces, i))))
			return ret;
	return 0;
}
