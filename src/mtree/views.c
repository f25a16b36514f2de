/*
 * The distinct FlatViews of a memory system, each with the address spaces
 * showing it: what `info mtree -f` and the SVG drawing iterate over.
 */
#include "mtree/internal.h"

void mt_views_free(mt_views *vs)
{
	for (size_t i = 0; i < vs->views.n; i++)
		mv_flatview_unref(vs->views.v[i]);
	for (size_t i = 0; i < vs->spaces.n; i++) {
		mt_ptrvec_free(vs->spaces.v[i]);
		mv_free(NULL, vs->spaces.v[i]);
	}
	mt_ptrvec_free(&vs->views);
	mt_ptrvec_free(&vs->spaces);
}

/* Start a new view entry for @fv (whose reference it takes over). */
static int views_add(mt_views *vs, mv_flatview *fv)
{
	mt_ptrvec *list = mv_zalloc(NULL, sizeof(*list));

	if (!list || mt_ptrvec_push(&vs->spaces, list)) {
		mv_free(NULL, list);
		return -ENOMEM;
	}
	/* On failure spaces has one entry more than views; both are freed. */
	return mt_ptrvec_push(&vs->views, fv);
}

int mt_views_collect(mt_views *vs, mv_memory *mem)
{
	size_t n = mv_memory_nr_address_spaces(mem);

	for (size_t i = 0; i < n; i++) {
		mv_address_space *as = mv_memory_address_space(mem, i);
		mv_flatview *fv = mv_address_space_get_flatview(as);
		long k = mt_ptrvec_find(&vs->views, fv);

		if (k >= 0) {
			mv_flatview_unref(fv);
		} else if (views_add(vs, fv)) {
			mv_flatview_unref(fv);
			return -ENOMEM;
		} else {
			k = (long)vs->views.n - 1;
		}
		if (mt_ptrvec_push(vs->spaces.v[k], as))
			return -ENOMEM;
	}
	return 0;
}
