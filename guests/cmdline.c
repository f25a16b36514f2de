/*
 * The PVH command line: space-separated key=value tokens (docs/guests.md).
 * Unknown keys and tokens without '=' are ignored, so firmware or a VMM
 * may add their own; an unknown workload name or a bad number is an error.
 */
#include "guest.h"

static const char *const wl_names[] = {
	[WL_TOUCH] = "touch", [WL_DIRTY] = "dirty", [WL_MMIO] = "mmio",
	[WL_PIO] = "pio", [WL_VERIFY] = "verify", [WL_ROM] = "rom",
};

static bool same(const char *a, size_t n, const char *b)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return b[n] == 0;
}

/* Decimal or 0x-hex, no sign, no overflow; within [min, max]. */
static bool parse_u64(const char *s, size_t n, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0, base = 10;
	size_t i = 0;

	if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		base = 16, i = 2;
	if (i == n)
		return false;
	for (; i < n; i++) {
		char c = s[i];
		uint64_t d;
		if (c >= '0' && c <= '9')
			d = (uint64_t)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (uint64_t)(c - 'a' + 10);
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = (uint64_t)(c - 'A' + 10);
		else
			return false;
		if (v > (UINT64_MAX - d) / base)
			return false;
		v = v * base + d;
	}
	if (v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool parse_workloads(const char *s, size_t n, struct config *c)
{
	size_t i = 0;

	c->nr_wl = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && s[j] != ',')
			j++;
		unsigned k;
		for (k = 0; k < sizeof(wl_names) / sizeof(wl_names[0]); k++)
			if (same(s + i, j - i, wl_names[k]))
				break;
		if (k == sizeof(wl_names) / sizeof(wl_names[0]) || c->nr_wl == MAX_WORKLOADS)
			return false;
		c->wl[c->nr_wl++] = (uint8_t)k;
		i = j + 1;
		if (j + 1 == n)
			return false;       /* trailing comma */
	}
	return c->nr_wl > 0;
}

#define U32MAX 0xffffffffULL

/* Keys, the fields they set, and their ranges. A general key (mib, seed,
 * count) sets every workload's field; a prefixed one only that workload's. */
struct key {
	const char *name;
	size_t off[2];
	unsigned nr;
	uint64_t min, max;
};
#define F(f) offsetof(struct config, f)
static const struct key keys[] = {
	{ "base_mib", { F(base_mib) }, 1, 1, 1ULL << 30 },
	{ "mib", { F(touch_mib), F(verify_mib) }, 2, 1, 1ULL << 30 },
	{ "touch_mib", { F(touch_mib) }, 1, 1, 1ULL << 30 },
	{ "verify_mib", { F(verify_mib) }, 1, 1, 1ULL << 30 },
	{ "ws_mib", { F(ws_mib) }, 1, 1, WS_MAX_MIB },
	{ "rounds", { F(rounds) }, 1, 0, U32MAX },
	{ "pages", { F(pages) }, 1, 0, U32MAX },
	{ "spin", { F(spin) }, 1, 0, UINT64_MAX },
	{ "seed", { F(dirty_seed), F(verify_seed) }, 2, 0, UINT64_MAX },
	{ "dirty_seed", { F(dirty_seed) }, 1, 0, UINT64_MAX },
	{ "verify_seed", { F(verify_seed) }, 1, 0, UINT64_MAX },
	{ "count", { F(mmio_count), F(pio_count) }, 2, 0, U32MAX },
	{ "mmio_count", { F(mmio_count) }, 1, 0, U32MAX },
	{ "pio_count", { F(pio_count) }, 1, 0, U32MAX },
	{ "seq_count", { F(seq_count) }, 1, 0, U32MAX },
};
#undef F

static void copy_token(char *bad, size_t badsz, const char *s, size_t n)
{
	if (n > badsz - 1)
		n = badsz - 1;
	memcpy(bad, s, n);
	bad[n] = 0;
}

int parse_cmdline(const char *s, struct config *c, char *bad, size_t badsz)
{
	static const uint8_t def_wl[] = { WL_TOUCH, WL_MMIO, WL_PIO, WL_DIRTY, WL_VERIFY, WL_ROM };

	memset(c, 0, sizeof(*c));
	c->nr_wl = sizeof(def_wl);
	memcpy(c->wl, def_wl, sizeof(def_wl));
	c->base_mib = 16;
	c->touch_mib = 8;
	c->ws_mib = 8;
	c->rounds = 4;
	c->pages = 256;
	c->dirty_seed = 1;
	c->spin = 0;
	c->mmio_count = 1000;
	c->pio_count = 1000;
	c->verify_mib = 4;
	c->verify_seed = 1;
	/* Out of the key's range, so "not given" is told apart from any value. */
	c->seq_count = UINT64_MAX;

	for (size_t i = 0;;) {
		while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
			i++;
		if (!s[i])
			break;
		size_t t = i, eq = 0;
		while (s[i] && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
			if (s[i] == '=' && !eq)
				eq = i;
			i++;
		}
		if (!eq)
			continue;
		const char *val = s + eq + 1;
		size_t klen = eq - t, vlen = i - eq - 1;
		if (same(s + t, klen, "workload")) {
			if (!parse_workloads(val, vlen, c))
				goto bad;
			continue;
		}
		for (unsigned k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			uint64_t v;
			if (!same(s + t, klen, keys[k].name))
				continue;
			if (!parse_u64(val, vlen, keys[k].min, keys[k].max, &v))
				goto bad;
			for (unsigned f = 0; f < keys[k].nr; f++)
				*(uint64_t *)((char *)c + keys[k].off[f]) = v;
		}
		continue;
bad:
		copy_token(bad, badsz, s + t, i - t);
		return -1;
	}
	/* SEQ follows mmio_count (and count) unless set on its own, so that
	 * SCRATCH and SEQ can be timed apart while existing outputs stay. */
	if (c->seq_count == UINT64_MAX)
		c->seq_count = c->mmio_count;
	return 0;
}
