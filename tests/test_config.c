/*
 * The JSON config loader: good layouts print the expected `info mtree`
 * text; every class of bad input gets its error code and one sentence
 * naming the region and field, and leaves nothing behind in the memory
 * system; allocation failures at every point roll back without leaks.
 */
#define _GNU_SOURCE     /* asprintf */
#include "testutil.h"
#include "mtreeutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memvirt/mtree.h"

static int count_block(mv_ramblock *rb, void *opaque)
{
	(void)rb;
	++*(int *)opaque;
	return 0;
}

static int nr_blocks(mv_memory *mem)
{
	int n = 0;

	mv_ram_list_foreach(mv_memory_ram_list(mem), count_block, &n);
	return n;
}

/*
 * Blocks left after a rollback, once RCU has run: a FlatView published
 * while the load was under way keeps its regions (and their blocks) until
 * a grace period ends, so poll for up to 5 s before counting.
 */
static int nr_blocks_settled(mv_memory *mem)
{
	for (int i = 0; i < 500 && nr_blocks(mem); i++)
		usleep(10000);
	return nr_blocks(mem);
}

/* ------------------------------------------------------------------ */
/* Good configs                                                         */

/* The pc-like layout of tests/cli/pc-like.json, loaded from the file. */
static void test_pc_like_file(void **state)
{
	char path[4096];
	mv_memory *mem;
	mv_config *cfg;
	mv_error err;

	(void)state;
	assert_int_equal(mv_memory_new(NULL, &mem), 0);
	assert_int_equal(mv_config_load(mem, mtu_cli_file(path, sizeof(path), "pc-like.json"),
					NULL, &cfg, &err), 0);
	mtu_expect_golden(mv_mtree_print_tree, mem, "pc-like.tree");
	mtu_expect_golden(mv_mtree_print_flat, mem, "pc-like.flat");
	assert_int_equal(nr_blocks(mem), 2);
	mv_config_free(cfg);
	assert_int_equal(mv_memory_nr_address_spaces(mem), 0);
	assert_int_equal(nr_blocks_settled(mem), 0);
	mv_memory_free(mem);
}

/*
 * ids differing from names, a disabled and a readonly alias, ROM device,
 * reservation, later-wins overlap, an I/O region with children, an alias
 * root sharing the FlatView of its target.
 */
static void test_features_file(void **state)
{
	char path[4096];
	mv_memory *mem;
	mv_config *cfg;
	mv_error err;

	(void)state;
	assert_int_equal(mv_memory_new(NULL, &mem), 0);
	assert_int_equal(mv_config_load(mem, mtu_cli_file(path, sizeof(path), "features.json"),
					NULL, &cfg, &err), 0);
	mtu_expect_golden(mv_mtree_print_flat, mem, "features.flat");
	mtu_expect_golden(mv_mtree_print_tree, mem, "features.tree");
	/* RAM blocks are named by id: "ram" and "flash". */
	assert_non_null(mv_ram_list_find(mv_memory_ram_list(mem), "ram"));
	assert_non_null(mv_ram_list_find(mv_memory_ram_list(mem), "flash"));
	mv_config_free(cfg);
	mv_memory_free(mem);
}

/*
 * Inline text; a 2^64 io region; a RAM region reached only by an alias.
 * The flat line shows the priority of the RAM region itself (0), not the
 * alias's -7, as QEMU does.
 */
static void test_inline(void **state)
{
	static const char json[] =
		"{\"address-spaces\":[{\"name\":\"as\",\"root\":\"r\"}],"
		" \"regions\":["
		"  {\"name\":\"r\",\"kind\":\"io\",\"size\":\"0x10000000000000000\"},"
		"  {\"name\":\"m\",\"kind\":\"ram\",\"size\":\"0X2000\"},"
		"  {\"id\":\"w\",\"name\":\"win\",\"kind\":\"alias\",\"alias-of\":\"m\","
		"   \"alias-offset\":\"0x1000\",\"size\":\"0x1000\",\"parent\":\"r\","
		"   \"addr\":\"0xFFFFFFFFFFFFF000\",\"priority\":-7}"
		" ]}";
	mv_memory *mem;
	mv_config *cfg;
	mv_error err;

	(void)state;
	assert_int_equal(mv_memory_new(NULL, &mem), 0);
	assert_int_equal(mv_config_load(mem, NULL, json, &cfg, &err), 0);
	mtu_expect(mv_mtree_print_flat, mem,
	       "FlatView #0\n"
	       " AS \"as\", root: r\n"
	       " Root memory region: r\n"
	       "  0000000000000000-ffffffffffffefff (prio 0, i/o): r\n"
	       "  fffffffffffff000-ffffffffffffffff (prio 0, ram): m @0000000000001000\n"
	       "\n");
	mv_config_free(cfg);
	mv_memory_free(mem);
}

/* Among equal priorities the region later in the file wins. */
static void test_file_order(void **state)
{
	static const char json[] =
		"{\"address-spaces\":[{\"name\":\"as\",\"root\":\"c\"}],"
		" \"regions\":["
		"  {\"name\":\"c\",\"kind\":\"container\",\"size\":\"0x3000\"},"
		"  {\"name\":\"first\",\"kind\":\"io\",\"size\":\"0x2000\",\"parent\":\"c\"},"
		"  {\"name\":\"second\",\"kind\":\"io\",\"size\":\"0x2000\",\"parent\":\"c\","
		"   \"addr\":\"0x1000\"}"
		" ]}";
	mv_memory *mem;
	mv_config *cfg;
	mv_error err;

	(void)state;
	assert_int_equal(mv_memory_new(NULL, &mem), 0);
	assert_int_equal(mv_config_load(mem, NULL, json, &cfg, &err), 0);
	mtu_expect(mv_mtree_print_flat, mem,
	       "FlatView #0\n"
	       " AS \"as\", root: c\n"
	       " Root memory region: c\n"
	       "  0000000000000000-0000000000000fff (prio 0, i/o): first\n"
	       "  0000000000001000-0000000000002fff (prio 0, i/o): second\n"
	       "\n");
	mv_config_free(cfg);
	mv_memory_free(mem);
}

/* ------------------------------------------------------------------ */
/* Bad input: one error each, naming region and field; nothing left    */

struct bad_case {
	const char *what;
	int code;
	const char *regions;     /* JSON array text, or a whole document if '{' */
	const char *spaces;      /* JSON array text */
	const char *needles[3];  /* substrings the message must contain */
};

#define ROOT "{\"name\":\"sys\",\"kind\":\"container\",\"size\":\"0x100000000\"}"
#define AS "[{\"name\":\"memory\",\"root\":\"sys\"}]"

static const struct bad_case bad_cases[] = {
	{ "unknown parent", -ENOENT,
	  "[" ROOT ",{\"name\":\"dev\",\"kind\":\"io\",\"size\":\"0x10\",\"parent\":\"nope\"}]",
	  AS, { "region \"dev\"", "\"parent\"", "\"nope\"" } },
	{ "unknown alias target", -ENOENT,
	  "[" ROOT ",{\"name\":\"a\",\"kind\":\"alias\",\"size\":\"0x10\",\"alias-of\":\"ghost\","
	  "\"parent\":\"sys\"}]",
	  AS, { "region \"a\"", "\"alias-of\"", "\"ghost\"" } },
	{ "alias cycle", -ELOOP,
	  "[" ROOT ",{\"name\":\"a\",\"kind\":\"alias\",\"size\":\"0x10\",\"alias-of\":\"b\"},"
	  "{\"name\":\"b\",\"kind\":\"alias\",\"size\":\"0x10\",\"alias-of\":\"a\"}]",
	  AS, { "region \"b\"", "\"alias-of\"", "alias cycle" } },
	{ "alias of itself", -ELOOP,
	  "[" ROOT ",{\"name\":\"a\",\"kind\":\"alias\",\"size\":\"0x10\",\"alias-of\":\"a\"}]",
	  AS, { "region \"a\"", "\"alias-of\"", "cycle" } },
	{ "alias inside its own target", -ELOOP,
	  "[" ROOT ",{\"name\":\"a\",\"kind\":\"alias\",\"size\":\"0x10\",\"alias-of\":\"sys\","
	  "\"parent\":\"sys\"}]",
	  AS, { "region \"a\"", "\"alias-of\"", "\"sys\" contains \"a\"" } },
	{ "parent cycle", -ELOOP,
	  "[" ROOT ",{\"name\":\"x\",\"kind\":\"container\",\"size\":\"0x10\",\"parent\":\"y\"},"
	  "{\"name\":\"y\",\"kind\":\"container\",\"size\":\"0x10\",\"parent\":\"x\"}]",
	  AS, { "region \"", "\"parent\"", "cycle" } },
	{ "duplicate id", -EEXIST,
	  "[" ROOT ",{\"name\":\"sys\",\"kind\":\"io\",\"size\":\"0x10\"}]",
	  AS, { "region \"sys\"", "\"id\"", "regions[0]" } },
	{ "size 0", -EINVAL,
	  "[" ROOT ",{\"name\":\"z\",\"kind\":\"io\",\"size\":\"0x0\",\"parent\":\"sys\"}]",
	  AS, { "region \"z\"", "\"size\"", "0" } },
	{ "beyond 2^64", -EINVAL,
	  "[" ROOT ",{\"name\":\"far\",\"kind\":\"io\",\"size\":\"0x2000\",\"parent\":\"sys\","
	  "\"addr\":\"0xfffffffffffff000\"}]",
	  AS, { "region \"far\"", "\"addr\"", "2^64" } },
	{ "size above 2^64", -EINVAL,
	  "[" ROOT ",{\"name\":\"huge\",\"kind\":\"io\",\"size\":\"0x10000000000000001\"}]",
	  AS, { "region \"huge\"", "\"size\"", "too large" } },
	{ "address above 2^64-1", -EINVAL,
	  "[" ROOT ",{\"name\":\"hi\",\"kind\":\"io\",\"size\":\"0x1\",\"parent\":\"sys\","
	  "\"addr\":\"0x10000000000000000\"}]",
	  AS, { "region \"hi\"", "\"addr\"", "too large" } },
	{ "bad kind", -EINVAL,
	  "[" ROOT ",{\"name\":\"k\",\"kind\":\"flash\",\"size\":\"0x10\"}]",
	  AS, { "region \"k\"", "\"kind\"", "\"flash\"" } },
	{ "decimal string", -EINVAL,
	  "[" ROOT ",{\"name\":\"d\",\"kind\":\"io\",\"size\":\"4096\"}]",
	  AS, { "region \"d\"", "\"size\"", "hex" } },
	{ "bad hex digit", -EINVAL,
	  "[" ROOT ",{\"name\":\"d\",\"kind\":\"io\",\"size\":\"0x1g\"}]",
	  AS, { "region \"d\"", "\"size\"", "\"0x1g\"" } },
	{ "number instead of hex string", -EINVAL,
	  "[" ROOT ",{\"name\":\"n\",\"kind\":\"io\",\"size\":4096}]",
	  AS, { "region \"n\"", "\"size\"", "hex string" } },
	{ "missing size", -EINVAL,
	  "[" ROOT ",{\"name\":\"m\",\"kind\":\"io\"}]",
	  AS, { "region \"m\"", "missing", "\"size\"" } },
	{ "missing name", -EINVAL,
	  "[" ROOT ",{\"kind\":\"io\",\"size\":\"0x10\"}]",
	  AS, { "regions[1]", "missing", "\"name\"" } },
	{ "missing kind (named by id)", -EINVAL,
	  "[" ROOT ",{\"id\":\"dev0\",\"name\":\"dev\",\"size\":\"0x10\"}]",
	  AS, { "region \"dev0\"", "missing", "\"kind\"" } },
	{ "missing alias-of", -EINVAL,
	  "[" ROOT ",{\"name\":\"a\",\"kind\":\"alias\",\"size\":\"0x10\"}]",
	  AS, { "region \"a\"", "missing", "\"alias-of\"" } },
	{ "priority as string", -EINVAL,
	  "[" ROOT ",{\"name\":\"p\",\"kind\":\"io\",\"size\":\"0x10\",\"parent\":\"sys\","
	  "\"priority\":\"1\"}]",
	  AS, { "region \"p\"", "\"priority\"", "integer" } },
	{ "priority out of int range", -EINVAL,
	  "[" ROOT ",{\"name\":\"p\",\"kind\":\"io\",\"size\":\"0x10\",\"parent\":\"sys\","
	  "\"priority\":4294967296}]",
	  AS, { "region \"p\"", "\"priority\"", "range" } },
	{ "enabled as string", -EINVAL,
	  "[" ROOT ",{\"name\":\"e\",\"kind\":\"io\",\"size\":\"0x10\",\"enabled\":\"yes\"}]",
	  AS, { "region \"e\"", "\"enabled\"", "true or false" } },
	{ "parent as number", -EINVAL,
	  "[" ROOT ",{\"name\":\"e\",\"kind\":\"io\",\"size\":\"0x10\",\"parent\":3}]",
	  AS, { "region \"e\"", "\"parent\"", "string" } },
	{ "region not an object", -EINVAL,
	  "[" ROOT ",42]", AS, { "regions[1]", "object", NULL } },
	{ "unknown field", -EINVAL,
	  "[" ROOT ",{\"name\":\"u\",\"kind\":\"io\",\"size\":\"0x10\",\"prority\":1}]",
	  AS, { "region \"u\"", "unknown field", "\"prority\"" } },
	{ "alias-of on a non-alias", -EINVAL,
	  "[" ROOT ",{\"name\":\"u\",\"kind\":\"io\",\"size\":\"0x10\",\"alias-of\":\"sys\"}]",
	  AS, { "region \"u\"", "\"alias-of\"", "alias" } },
	{ "child of an alias", -EINVAL,
	  "[" ROOT ",{\"name\":\"a\",\"kind\":\"alias\",\"size\":\"0x10\",\"alias-of\":\"sys\"},"
	  "{\"name\":\"c\",\"kind\":\"io\",\"size\":\"0x10\",\"parent\":\"a\"}]",
	  AS, { "region \"c\"", "\"parent\"", "alias" } },
	{ "alias window past its target", -EINVAL,
	  "[" ROOT ",{\"name\":\"r\",\"kind\":\"ram\",\"size\":\"0x1000\"},"
	  "{\"name\":\"a\",\"kind\":\"alias\",\"size\":\"0x1000\",\"alias-of\":\"r\","
	  "\"alias-offset\":\"0x800\"}]",
	  AS, { "region \"a\"", "\"alias-offset\"", "\"r\"" } },
	{ "address on a root", -EINVAL,
	  "[" ROOT ",{\"name\":\"r\",\"kind\":\"io\",\"size\":\"0x10\",\"addr\":\"0x10\"}]",
	  AS, { "region \"r\"", "\"addr\"", "\"parent\"" } },
	{ "RAM too big", -EINVAL,
	  "[" ROOT ",{\"name\":\"big\",\"kind\":\"ram\",\"size\":\"0x10000000000000000\"}]",
	  AS, { "region \"big\"", "\"size\"", "1 TiB" } },
	{ "RAM not whole pages", -EINVAL,
	  "[" ROOT ",{\"name\":\"odd\",\"kind\":\"rom\",\"size\":\"0x800\"}]",
	  AS, { "region \"odd\"", "\"size\"", "4 KiB" } },
	{ "unknown root", -ENOENT,
	  "[" ROOT "]", "[{\"name\":\"memory\",\"root\":\"missing\"}]",
	  { "address space \"memory\"", "\"root\"", "\"missing\"" } },
	{ "address space without root", -EINVAL,
	  "[" ROOT "]", "[{\"name\":\"memory\"}]",
	  { "address space \"memory\"", "missing", "\"root\"" } },
	{ "top level not an object", -EINVAL,
	  "[1, 2]", NULL, { "top level", "object", NULL } },
	{ "missing regions", -EINVAL,
	  "{\"address-spaces\": []}", NULL, { "missing", "\"regions\"", NULL } },
	{ "syntax error", -EINVAL,
	  "{\"address-spaces\": [],\n \"regions\": [\n  {\"name\": \"a\",}\n ]}", NULL,
	  { "config:3:", "JSON syntax error", NULL } },
	{ "duplicate key", -EINVAL,
	  "{\"address-spaces\": [], \"regions\": [], \"regions\": []}", NULL,
	  { "config:1:", "duplicate", NULL } },
};

/* The document of @c: a whole text, or regions + spaces arrays. */
static char *bad_doc(const struct bad_case *c)
{
	char *doc;

	if (!c->spaces) {
		doc = strdup(c->regions);
	} else if (asprintf(&doc, "{\"address-spaces\": %s, \"regions\": %s}",
			    c->spaces, c->regions) < 0) {
		doc = NULL;
	}
	assert_non_null(doc);
	return doc;
}

static void test_bad_input(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		char *doc = bad_doc(c);
		mv_config *cfg = (mv_config *)1;
		mv_error err = { 0 };
		mv_memory *mem;
		int ret;

		assert_int_equal(mv_memory_new(NULL, &mem), 0);
		ret = mv_config_load(mem, NULL, doc, &cfg, &err);
		printf("# %-32s %d %s\n", c->what, ret, err.msg);
		assert_int_equal(ret, c->code);
		assert_int_equal(err.code, c->code);
		assert_null(cfg);
		assert_null(strchr(err.msg, '\n'));
		assert_true(!strncmp(err.msg, "config", 6));
		for (int k = 0; k < 3 && c->needles[k]; k++) {
			if (!strstr(err.msg, c->needles[k]))
				printf("# case \"%s\": \"%s\" not in: %s\n", c->what,
				       c->needles[k], err.msg);
			assert_non_null(strstr(err.msg, c->needles[k]));
		}
		/* Nothing stays behind. */
		assert_int_equal(mv_memory_nr_address_spaces(mem), 0);
		assert_int_equal(nr_blocks(mem), 0);
		mv_memory_free(mem);
		free(doc);
	}
}

/* A late failure (RAM block name taken) must undo the regions already made. */
static void test_rollback_after_creation(void **state)
{
	static const char json[] =
		"{\"address-spaces\":[{\"name\":\"as\",\"root\":\"c\"}],"
		" \"regions\":["
		"  {\"name\":\"c\",\"kind\":\"container\",\"size\":\"0x100000\"},"
		"  {\"name\":\"a\",\"kind\":\"ram\",\"size\":\"0x1000\",\"parent\":\"c\"},"
		"  {\"name\":\"taken\",\"kind\":\"ram\",\"size\":\"0x1000\",\"parent\":\"c\","
		"   \"addr\":\"0x1000\"}"
		" ]}";
	mv_ramblock *squatter;
	mv_memory *mem;
	mv_config *cfg;
	mv_error err;

	(void)state;
	assert_int_equal(mv_memory_new(NULL, &mem), 0);
	assert_int_equal(mv_ramblock_new(mv_memory_ram_list(mem), "taken", 0x1000, NULL,
					 &squatter, &err), 0);
	assert_int_equal(mv_config_load(mem, NULL, json, &cfg, &err), -EEXIST);
	printf("# %s\n", err.msg);
	assert_non_null(strstr(err.msg, "region \"taken\""));
	assert_non_null(strstr(err.msg, "RAM block"));
	assert_int_equal(mv_memory_nr_address_spaces(mem), 0);
	assert_int_equal(nr_blocks(mem), 1);    /* only the squatter */
	mv_ramblock_unref(squatter);
	mv_memory_free(mem);
}

static void test_missing_file(void **state)
{
	mv_memory *mem;
	mv_config *cfg;
	mv_error err;

	(void)state;
	assert_int_equal(mv_memory_new(NULL, &mem), 0);
	assert_int_equal(mv_config_load(mem, "/nonexistent/layout.json", NULL, &cfg, &err),
			 -ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/layout.json"));
	mv_memory_free(mem);
}

/* A syntax error in a file is reported as PATH:LINE:COLUMN. */
static void test_file_syntax_error(void **state)
{
	char path[] = "/tmp/mv_cfg_XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");
	char want[64];
	mv_memory *mem;
	mv_config *cfg;
	mv_error err;

	(void)state;
	assert_non_null(f);
	fputs("{\n  \"regions\": [\n    nope\n  ]\n}\n", f);
	fclose(f);
	assert_int_equal(mv_memory_new(NULL, &mem), 0);
	assert_int_equal(mv_config_load(mem, path, NULL, &cfg, &err), -EINVAL);
	printf("# %s\n", err.msg);
	snprintf(want, sizeof(want), "%s:3:", path);
	assert_true(!strncmp(err.msg, want, strlen(want)));
	mv_memory_free(mem);
	unlink(path);
}

/* ------------------------------------------------------------------ */
/* Failure injection                                                    */

/*
 * Fail the n-th allocation of the memory system for every n until a load
 * goes through: each failing load returns -ENOMEM and leaves the memory
 * system empty (ASan's leak check covers the rest).
 */
static void inject_failures(bool fail_all)
{
	char path[4096];
	unsigned long n;

	mtu_cli_file(path, sizeof(path), "features.json");
	for (n = 1; ; n++) {
		tu_failing_alloc fa;
		mv_memory *mem;
		mv_config *cfg;
		mv_error err;
		bool hit;
		int ret;

		tu_failing_alloc_init(&fa, n, fail_all);
		if (mv_memory_new(&fa.alloc, &mem))
			continue;
		ret = mv_config_load(mem, path, NULL, &cfg, &err);
		hit = fa.calls >= n;
		fa.fail_at = 0;     /* let teardown allocate if it must */
		if (ret) {
			assert_int_equal(ret, -ENOMEM);
			assert_null(cfg);
			assert_int_equal(mv_memory_nr_address_spaces(mem), 0);
			assert_int_equal(nr_blocks_settled(mem), 0);
		} else {
			mv_config_free(cfg);
		}
		mv_memory_free(mem);
		if (!ret && !hit)
			break;
	}
	printf("# %s: %lu allocation points tried\n", fail_all ? "fail-all" : "fail-one", n);
	assert_true(n > 10);
}

static void test_alloc_failures(void **state)
{
	(void)state;
	inject_failures(false);
	inject_failures(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pc_like_file),
		cmocka_unit_test(test_features_file),
		cmocka_unit_test(test_inline),
		cmocka_unit_test(test_file_order),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_rollback_after_creation),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_file_syntax_error),
		cmocka_unit_test(test_alloc_failures),
	};

	mv_rcu_register_thread();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
