/*
 * A FlatView drawn as SVG: one column of address bands per view, from
 * address 0 at the top to the end of the address space at the bottom,
 * coloured by what answers there (RAM, ROM, ROM device, I/O, reservation,
 * nothing). Band heights grow with log2 of the size, not linearly: a 4 KiB
 * MMIO window next to 3 GiB of RAM must stay visible and labelled.
 */
#include "memvirt/mtree.h"

#include <inttypes.h>
#include <string.h>

#include "mtree/internal.h"

#define SVG_WIDTH     1000
#define SVG_MARGIN    16
#define BAND_X        176     /* left edge of the bands; start addresses left of it */
#define BAND_W        220
#define LABEL_X       (BAND_X + BAND_W + 10)
#define BAND_MIN_H    18      /* one text line */
#define BAND_PX_PER_BIT 2     /* extra height per doubling of the size */
#define VIEW_TITLE_H  44
#define VIEW_GAP      28
#define HEADER_H      76

/* What answers in a band, with its fill colour and legend text. */
enum band_kind { BK_RAM, BK_ROM, BK_ROMD, BK_IO, BK_RESV, BK_NONE, BK_NR };

static const struct {
	const char *fill;
	const char *legend;
} band_style[BK_NR] = {
	[BK_RAM]  = { "#86d386", "ram" },
	[BK_ROM]  = { "#86aee8", "rom (or read-only)" },
	[BK_ROMD] = { "#f2b660", "romd" },
	[BK_IO]   = { "#ee9090", "i/o" },
	[BK_RESV] = { "url(#hatch)", "reservation" },
	[BK_NONE] = { "#f4f4f4", "unassigned" },
};

/* One band: a flat range, or a hole between ranges (fr == NULL). */
struct band {
	uint64_t start;
	mv_u128 size;
	const mv_flat_range *fr;
};

/* floor(log2(@v)) for v >= 1. */
static unsigned log2_u128(mv_u128 v)
{
	unsigned bits = 0;

	while (v > 1) {
		v >>= 1;
		bits++;
	}
	return bits;
}

static unsigned band_height(mv_u128 size)
{
	return BAND_MIN_H + BAND_PX_PER_BIT * log2_u128(size);
}

static enum band_kind classify(const struct band *b)
{
	const char *word;

	if (!b->fr)
		return BK_NONE;
	if (mv_region_get_kind(b->fr->mr) == MV_REGION_RESERVATION)
		return BK_RESV;
	/* The same word `info mtree -f` prints for the range. */
	word = b->fr->readonly ? "rom" : mv_region_type_name(b->fr->mr);
	if (!strcmp(word, "ram"))
		return BK_RAM;
	if (!strcmp(word, "rom"))
		return BK_ROM;
	if (!strcmp(word, "romd"))
		return BK_ROMD;
	return BK_IO;
}

/* @s with XML's special characters escaped. */
static void put_escaped(FILE *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '&': fputs("&amp;", out); break;
		case '"': fputs("&quot;", out); break;
		case '\'': fputs("&apos;", out); break;
		default: fputc(*s, out);
		}
	}
}

/*
 * A size as people say it: exact in the largest unit that divides it
 * ("3071 MiB", "128 KiB"), or rounded with a "~" when that would take
 * more than four digits ("~16.00 EiB" rather than 17179869179 GiB).
 */
static void put_size(FILE *out, mv_u128 size)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	const unsigned last = sizeof(units) / sizeof(units[0]) - 1;
	mv_u128 exact = size;
	unsigned u = 0, big = 0;

	while (u < last && exact >= 1024 && !(exact % 1024)) {
		exact /= 1024;
		u++;
	}
	if (exact < 10000) {
		fprintf(out, "%llu %s", (unsigned long long)exact, units[u]);
		return;
	}
	while (big < last && size >> (10 * (big + 1)))
		big++;
	fprintf(out, "~%.2f %s", (double)size / (double)((mv_u128)1 << (10 * big)), units[big]);
}

/*
 * How far the column reaches: the size of the first address space's root,
 * or the end of the last range if that is further.
 */
static mv_u128 view_extent(mv_flatview *fv, const mt_ptrvec *spaces)
{
	mv_u128 extent = mv_region_size(mv_address_space_root(spaces->v[0]));
	size_t n = mv_flatview_nr_ranges(fv);

	if (n) {
		const mv_flat_range *last = mv_flatview_range(fv, n - 1);

		if ((mv_u128)last->start + last->size > extent)
			extent = (mv_u128)last->start + last->size;
	}
	return extent;
}

/*
 * Call @fn for each band of @fv in address order: its ranges and the holes
 * around them, up to @extent. Returns the sum of @fn's results.
 */
static unsigned long for_each_band(mv_flatview *fv, mv_u128 extent,
				   unsigned long (*fn)(const struct band *, void *), void *opaque)
{
	size_t n = mv_flatview_nr_ranges(fv);
	unsigned long sum = 0;
	mv_u128 pos = 0;

	for (size_t i = 0; i <= n; i++) {
		const mv_flat_range *fr = i < n ? mv_flatview_range(fv, i) : NULL;
		mv_u128 next = fr ? fr->start : extent;

		if (next > pos) {
			struct band hole = { (uint64_t)pos, next - pos, NULL };

			sum += fn(&hole, opaque);
		}
		if (fr) {
			struct band b = { fr->start, fr->size, fr };

			sum += fn(&b, opaque);
			pos = (mv_u128)fr->start + fr->size;
		}
	}
	return sum;
}

static unsigned long band_height_cb(const struct band *b, void *opaque)
{
	(void)opaque;
	return band_height(b->size);
}

static unsigned view_height(mv_flatview *fv, const mt_ptrvec *spaces)
{
	return VIEW_TITLE_H + for_each_band(fv, view_extent(fv, spaces), band_height_cb, NULL) +
	       VIEW_GAP;
}

struct draw {
	FILE *out;
	unsigned y;     /* top of the next band */
};

/* The text right of a band: name @offset (type, size) start-end. */
static void put_band_label(FILE *out, const struct band *b, enum band_kind kind)
{
	uint64_t end = b->start + mt_last_offset(b->size);

	if (b->fr) {
		put_escaped(out, mv_region_name(b->fr->mr));
		if (b->fr->offset_in_region)
			fprintf(out, " @0x%" PRIx64, b->fr->offset_in_region);
		fprintf(out, " (%s%s, ", b->fr->nonvolatile ? "nv-" : "",
			kind == BK_RESV ? "reservation" :
			b->fr->readonly ? "rom" : mv_region_type_name(b->fr->mr));
	} else {
		fputs("unassigned (", out);
	}
	put_size(out, b->size);
	fprintf(out, ") 0x%" PRIx64 "-0x%" PRIx64, b->start, end);
}

static unsigned long draw_band(const struct band *b, void *opaque)
{
	struct draw *dr = opaque;
	enum band_kind kind = classify(b);
	unsigned h = band_height(b->size);
	unsigned text_y = dr->y + h / 2 + 4;

	fprintf(dr->out, "<rect x=\"%d\" y=\"%u\" width=\"%d\" height=\"%u\" fill=\"%s\" "
		"stroke=\"#444\" stroke-width=\"0.6\"%s/>\n", BAND_X, dr->y, BAND_W, h,
		band_style[kind].fill, kind == BK_NONE ? " stroke-dasharray=\"3,2\"" : "");
	fprintf(dr->out, "<text x=\"%d\" y=\"%u\" text-anchor=\"end\" fill=\"#333\">"
		"0x%016" PRIx64 "</text>\n", BAND_X - 6, dr->y + 10, b->start);
	fprintf(dr->out, "<text x=\"%d\" y=\"%u\"%s>", LABEL_X, text_y,
		kind == BK_NONE ? " fill=\"#888\"" : "");
	put_band_label(dr->out, b, kind);
	fputs("</text>\n", dr->out);
	dr->y += h;
	return 0;
}

/* "FlatView #N" and the address spaces showing it. */
static void draw_view_title(FILE *out, unsigned nr, mv_flatview *fv,
			    const mt_ptrvec *spaces, unsigned y)
{
	const mv_region *root = mv_flatview_root(fv);

	fprintf(out, "<text x=\"%d\" y=\"%u\" font-size=\"14\" font-weight=\"bold\">"
		"FlatView #%u (root: ", SVG_MARGIN, y + 16, nr);
	put_escaped(out, root ? mv_region_name(root) : "(none)");
	fputs(")</text>\n", out);
	fprintf(out, "<text x=\"%d\" y=\"%u\" fill=\"#333\">address spaces:", SVG_MARGIN, y + 32);
	for (size_t i = 0; i < spaces->n; i++) {
		fputs(i ? ", " : " ", out);
		put_escaped(out, mv_address_space_name(spaces->v[i]));
	}
	fputs("</text>\n", out);
}

static unsigned draw_view(FILE *out, unsigned nr, mv_flatview *fv, const mt_ptrvec *spaces,
			  unsigned y)
{
	struct draw dr = { out, y + VIEW_TITLE_H };
	mv_u128 extent = view_extent(fv, spaces);

	draw_view_title(out, nr, fv, spaces, y);
	for_each_band(fv, extent, draw_band, &dr);
	/* The last address closes the column. */
	fprintf(out, "<text x=\"%d\" y=\"%u\" text-anchor=\"end\" fill=\"#333\">"
		"0x%016" PRIx64 "</text>\n", BAND_X - 6, dr.y + 4, (uint64_t)(extent - 1));
	return dr.y + VIEW_GAP;
}

/* Title, scale note and colour legend. */
static void draw_header(FILE *out)
{
	fprintf(out, "<text x=\"%d\" y=\"24\" font-size=\"16\" font-weight=\"bold\">"
		"memvirt: guest-physical memory map</text>\n", SVG_MARGIN);
	fprintf(out, "<text x=\"%d\" y=\"42\" fill=\"#555\">Band height grows with "
		"log2(size): not to scale. Start address left, last address in the "
		"label.</text>\n", SVG_MARGIN);
	for (int k = 0; k < BK_NR; k++) {
		int x = SVG_MARGIN + k * 150;

		fprintf(out, "<rect x=\"%d\" y=\"52\" width=\"16\" height=\"12\" fill=\"%s\" "
			"stroke=\"#444\" stroke-width=\"0.6\"/>\n", x, band_style[k].fill);
		fprintf(out, "<text x=\"%d\" y=\"62\">%s</text>\n", x + 22, band_style[k].legend);
	}
}

static void draw_prologue(FILE *out, unsigned height)
{
	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", out);
	fprintf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%u\" "
		"viewBox=\"0 0 %d %u\" font-family=\"DejaVu Sans Mono, monospace\" "
		"font-size=\"11\">\n", SVG_WIDTH, height, SVG_WIDTH, height);
	fputs("<defs><pattern id=\"hatch\" width=\"6\" height=\"6\" "
	      "patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
	      "<rect width=\"6\" height=\"6\" fill=\"#d0d0d0\"/>"
	      "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#808080\" stroke-width=\"2\"/>"
	      "</pattern></defs>\n", out);
	fprintf(out, "<rect width=\"%d\" height=\"%u\" fill=\"white\"/>\n", SVG_WIDTH, height);
}

/**
 * mv_mtree_print_svg - draw every FlatView of @mem as one SVG document
 * @out: stream to write to
 * @mem: memory system (read on the mutation thread)
 *
 * Returns 0, -ENOMEM (nothing written) or -EIO if @out failed.
 */
int mv_mtree_print_svg(FILE *out, mv_memory *mem)
{
	mt_views vs = { 0 };
	unsigned height = HEADER_H, y = HEADER_H;
	int err = mt_views_collect(&vs, mem);

	if (err) {
		mt_views_free(&vs);
		return err;
	}
	for (size_t i = 0; i < vs.views.n; i++)
		height += view_height(vs.views.v[i], vs.spaces.v[i]);
	draw_prologue(out, height);
	draw_header(out);
	for (size_t i = 0; i < vs.views.n; i++)
		y = draw_view(out, (unsigned)i, vs.views.v[i], vs.spaces.v[i], y);
	fputs("</svg>\n", out);
	mt_views_free(&vs);
	return mt_stream_status(out);
}
