/* plot: cairo drawing of the `caopd analyze` figures (plot.h). Margins are computed from
 * measured text extents before anything is drawn, so labels are neither clipped nor stacked
 * on each other; data is clipped to its axes and NaN points are skipped. */
#include "analysis/figures/plot.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tests build this file with -DPLOT_REALLOC=<failing allocator> to walk the NOMEM paths. */
#ifdef PLOT_REALLOC
void *PLOT_REALLOC(void *p, size_t size);
#else
#define PLOT_REALLOC realloc
#endif

#define PLOT_PI 3.14159265358979323846

/* ---- errors ---------------------------------------------------------------------------- */

static _Thread_local char plot_msg[1024];

const char *plot_errmsg(void) {
    return plot_msg;
}

const char *plot_status_str(plot_status s) {
    switch (s) {
    case PLOT_OK:
        return "ok";
    case PLOT_ERR_ARG:
        return "bad argument";
    case PLOT_ERR_IO:
        return "cannot write the output file";
    case PLOT_ERR_NOMEM:
        return "out of memory";
    case PLOT_ERR_CAIRO:
        return "cairo drawing error";
    }
    return "unknown plot status";
}

static plot_status fail(plot_status st, const char *path, const char *fmt, ...) {
    int k = snprintf(plot_msg, sizeof plot_msg, "plot '%s': ", path ? path : "(no path)");
    if (k < 0 || (size_t)k >= sizeof plot_msg) return st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(plot_msg + k, sizeof plot_msg - (size_t)k, fmt, ap);
    va_end(ap);
    return st;
}

/* ---- small helpers --------------------------------------------------------------------- */

plot_figure plot_figure_default(void) {
    plot_figure f;
    memset(&f, 0, sizeof f);
    f.ymin = NAN;
    f.ymax = NAN;
    return f;
}

static int lower_ascii(int c) {
    return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static int ends_with_ci(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    if (n < m) return 0;
    for (size_t i = 0; i < m; i++)
        if (lower_ascii((unsigned char)s[n - m + i]) != suffix[i]) return 0;
    return 1;
}

plot_format plot_format_from_path(const char *path) {
    if (!path) return PLOT_FORMAT_UNKNOWN;
    if (ends_with_ci(path, ".png")) return PLOT_FORMAT_PNG;
    if (ends_with_ci(path, ".svg")) return PLOT_FORMAT_SVG;
    if (ends_with_ci(path, ".pdf")) return PLOT_FORMAT_PDF;
    return PLOT_FORMAT_UNKNOWN;
}

static int has_text(const char *s) {
    return s && s[0];
}

/* The figure's fixed range when it is valid (lo < hi, both finite). */
static int fixed_range(double lo, double hi) {
    return isfinite(lo) && isfinite(hi) && lo < hi;
}

/* ---- growable byte buffer -------------------------------------------------------------- */

typedef struct growbuf {
    char *p;
    size_t len, cap;
} growbuf;

static int gb_append(growbuf *b, const void *data, size_t n) {
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n) {
            if (cap > ((size_t)-1) / 2) return -1;
            cap *= 2;
        }
        char *p = PLOT_REALLOC(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

/* ---- canvas: a cairo context drawing into an in-memory file ----------------------------- */

typedef struct canvas {
    cairo_surface_t *surface;
    cairo_t *cr;
    plot_format fmt;
    const char *path;  /* borrowed from the figure */
    const char *title; /* borrowed; SVG <title>, PDF metadata */
    double w, h;       /* points */
    growbuf out;       /* the encoded file */
    growbuf texts;     /* every drawn string, one per line (SVG <desc>) */
    int nomem;         /* a buffer could not grow */
} canvas;

static cairo_status_t write_cb(void *closure, const unsigned char *data, unsigned int length) {
    canvas *cv = closure;
    if (gb_append(&cv->out, data, length)) {
        cv->nomem = 1;
        return CAIRO_STATUS_NO_MEMORY;
    }
    return CAIRO_STATUS_SUCCESS;
}

#define PLOT_MAX_PIXELS 16384.0 /* per side; cairo image surfaces stop at 32767 */
#define PLOT_MAX_POINTS 10000.0 /* per side */

/* Checks the figure and opens a canvas of its size (or the defaults). */
static plot_status canvas_open(canvas *cv, const plot_figure *fig, double def_w, double def_h) {
    memset(cv, 0, sizeof *cv);
    if (!fig) return fail(PLOT_ERR_ARG, NULL, "no figure given (fig is NULL)");
    if (!has_text(fig->path))
        return fail(PLOT_ERR_ARG, NULL, "the figure has no output path (set fig.path)");
    cv->path = fig->path;
    cv->title = fig->title;
    cv->fmt = plot_format_from_path(fig->path);
    if (cv->fmt == PLOT_FORMAT_UNKNOWN)
        return fail(PLOT_ERR_ARG, fig->path,
                    "unknown file extension; end the path in .png, .svg or .pdf");
    double w = fig->width > 0 ? fig->width : def_w;
    double h = fig->height > 0 ? fig->height : def_h;
    double scale = fig->png_scale > 0 ? fig->png_scale : 2.0;
    if (!(w >= 100 && h >= 100 && w <= PLOT_MAX_POINTS && h <= PLOT_MAX_POINTS) ||
        !(fig->width >= 0 && fig->height >= 0 && fig->png_scale >= 0))
        return fail(PLOT_ERR_ARG, fig->path,
                    "figure size %g x %g points is out of range (100..%g per side)", w, h,
                    PLOT_MAX_POINTS);
    cv->w = w;
    cv->h = h;
    switch (cv->fmt) {
    case PLOT_FORMAT_PNG: {
        double pw = ceil(w * scale), ph = ceil(h * scale);
        if (!(pw <= PLOT_MAX_PIXELS && ph <= PLOT_MAX_PIXELS))
            return fail(PLOT_ERR_ARG, fig->path,
                        "PNG of %g x %g pixels is too large (at most %g per side); lower "
                        "fig.png_scale or the size",
                        pw, ph, PLOT_MAX_PIXELS);
        cv->surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)pw, (int)ph);
        break;
    }
    case PLOT_FORMAT_SVG:
        cv->surface = cairo_svg_surface_create_for_stream(write_cb, cv, w, h);
        break;
    case PLOT_FORMAT_PDF:
        cv->surface = cairo_pdf_surface_create_for_stream(write_cb, cv, w, h);
        if (cairo_surface_status(cv->surface) == CAIRO_STATUS_SUCCESS) {
            if (has_text(fig->title))
                cairo_pdf_surface_set_metadata(cv->surface, CAIRO_PDF_METADATA_TITLE, fig->title);
            cairo_pdf_surface_set_metadata(cv->surface, CAIRO_PDF_METADATA_CREATOR,
                                           "caopd analyze");
        }
        break;
    default:
        break;
    }
    cv->cr = cairo_create(cv->surface);
    cairo_status_t cs = cairo_status(cv->cr);
    if (cs != CAIRO_STATUS_SUCCESS) {
        cairo_destroy(cv->cr);
        cairo_surface_destroy(cv->surface);
        return fail(cs == CAIRO_STATUS_NO_MEMORY ? PLOT_ERR_NOMEM : PLOT_ERR_CAIRO, fig->path,
                    "cairo could not create the surface: %s", cairo_status_to_string(cs));
    }
    if (cv->fmt == PLOT_FORMAT_PNG) cairo_scale(cv->cr, scale, scale);
    cairo_set_source_rgb(cv->cr, 1, 1, 1);
    cairo_rectangle(cv->cr, 0, 0, w, h);
    cairo_fill(cv->cr);
    return PLOT_OK;
}

/* Writes s[0..n) escaped for XML text content. */
static int fput_xml(FILE *f, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '&':
            rep = "&amp;";
            break;
        default:
            break;
        }
        if (rep ? fputs(rep, f) < 0 : fputc(s[i], f) == EOF) return -1;
    }
    return 0;
}

/* Writes the encoded file; for SVG, <title> and <desc> go right after the <svg ...> tag. */
static int write_file(const canvas *cv) {
    FILE *f = fopen(cv->path, "wb");
    if (!f) return -1;
    size_t head = cv->out.len; /* bytes before the injected elements */
    if (cv->fmt == PLOT_FORMAT_SVG) {
        const char *p = NULL;
        for (size_t i = 0; i + 4 <= cv->out.len; i++)
            if (memcmp(cv->out.p + i, "<svg", 4) == 0) {
                p = memchr(cv->out.p + i, '>', cv->out.len - i);
                break;
            }
        if (p) head = (size_t)(p - cv->out.p) + 1;
    }
    int bad = fwrite(cv->out.p, 1, head, f) != head;
    if (!bad && head < cv->out.len) {
        const char *t = cv->title ? cv->title : "";
        bad = fputs("\n<title>", f) < 0 || fput_xml(f, t, strlen(t)) ||
              fputs("</title>\n<desc>", f) < 0 || fput_xml(f, cv->texts.p, cv->texts.len) ||
              fputs("</desc>", f) < 0 ||
              fwrite(cv->out.p + head, 1, cv->out.len - head, f) != cv->out.len - head;
    }
    int saved = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        saved = errno;
    }
    if (bad) {
        remove(cv->path);
        errno = saved;
        return -1;
    }
    return 0;
}

static void canvas_release(canvas *cv) {
    free(cv->out.p);
    free(cv->texts.p);
    cv->out.p = cv->texts.p = NULL;
}

/* Drops an open canvas without writing anything (a failed call leaves no file). */
static void canvas_abort(canvas *cv) {
    cairo_destroy(cv->cr);
    cairo_surface_destroy(cv->surface);
    canvas_release(cv);
}

/* Finishes the drawing, encodes it and writes the file; frees the canvas in every case. */
static plot_status canvas_close(canvas *cv) {
    cairo_status_t cs = cairo_status(cv->cr);
    cairo_destroy(cv->cr);
    if (cv->fmt == PLOT_FORMAT_PNG) {
        if (cs == CAIRO_STATUS_SUCCESS)
            cs = cairo_surface_write_to_png_stream(cv->surface, write_cb, cv);
    } else {
        cairo_surface_finish(cv->surface);
        if (cs == CAIRO_STATUS_SUCCESS) cs = cairo_surface_status(cv->surface);
    }
    cairo_surface_destroy(cv->surface);
    plot_status st = PLOT_OK;
    if (cv->nomem)
        st = fail(PLOT_ERR_NOMEM, cv->path,
                  "out of memory while encoding the figure (%zu bytes so far)", cv->out.len);
    else if (cs == CAIRO_STATUS_NO_MEMORY)
        st = fail(PLOT_ERR_NOMEM, cv->path, "cairo ran out of memory");
    else if (cs != CAIRO_STATUS_SUCCESS)
        st = fail(PLOT_ERR_CAIRO, cv->path, "cairo failed: %s", cairo_status_to_string(cs));
    else if (write_file(cv) != 0)
        st = fail(PLOT_ERR_IO, cv->path,
                  "cannot write the file: %s (check that the folder exists and is writable)",
                  strerror(errno));
    canvas_release(cv);
    if (st == PLOT_OK) plot_msg[0] = '\0';
    return st;
}

/* ---- colours --------------------------------------------------------------------------- */

typedef struct rgb {
    double r, g, b;
} rgb;

/* Okabe & Ito (2008) colour-blind-safe palette. */
static const rgb palette[PLOT_NCOLORS] = {
    {0.000, 0.447, 0.698}, /* blue */
    {0.835, 0.369, 0.000}, /* vermillion */
    {0.000, 0.620, 0.451}, /* bluish green */
    {0.800, 0.475, 0.655}, /* reddish purple */
    {0.902, 0.624, 0.000}, /* orange */
    {0.337, 0.706, 0.914}, /* sky blue */
    {0.000, 0.000, 0.000}, /* black */
    {0.941, 0.894, 0.259}, /* yellow */
};

static rgb series_color(const plot_series *s, size_t pos) {
    int k = s->color > 0 ? (s->color - 1) % PLOT_NCOLORS : (int)(pos % PLOT_NCOLORS);
    return palette[k];
}

static void set_rgb(cairo_t *cr, rgb c) {
    cairo_set_source_rgb(cr, c.r, c.g, c.b);
}

static void set_rgba(cairo_t *cr, rgb c, double a) {
    cairo_set_source_rgba(cr, c.r, c.g, c.b, a);
}

static const rgb ink = {0.15, 0.15, 0.15};   /* text and axes */
static const rgb grid = {0.88, 0.88, 0.88};  /* grid lines */
static const rgb faint = {0.45, 0.45, 0.45}; /* notes, NaN dashes */

/* Viridis sampled at 0, 1/8, ..., 1 (matplotlib's table), interpolated linearly. */
static const rgb viridis[9] = {
    {0.267, 0.005, 0.329}, {0.278, 0.173, 0.478}, {0.231, 0.318, 0.545},
    {0.173, 0.443, 0.557}, {0.129, 0.569, 0.549}, {0.157, 0.682, 0.502},
    {0.369, 0.788, 0.384}, {0.678, 0.863, 0.188}, {0.992, 0.906, 0.145},
};

static rgb viridis_at(double t) {
    if (!(t > 0)) t = 0;
    if (t > 1) t = 1;
    double u = t * 8;
    int i = (int)u;
    if (i > 7) i = 7;
    double f = u - i;
    rgb a = viridis[i], b = viridis[i + 1];
    return (rgb){a.r + f * (b.r - a.r), a.g + f * (b.g - a.g), a.b + f * (b.b - a.b)};
}

/* ---- text ------------------------------------------------------------------------------ */

#define FONT_FAMILY "DejaVu Sans"
#define FS_TITLE 14.0
#define FS_SUB 10.5
#define FS_LABEL 11.5
#define FS_TICK 10.0
#define FS_LEGEND 10.0
#define FS_CELL 10.5
#define PAD 10.0 /* figure border */
#define TICK_LEN 4.0
#define GAP 5.0 /* between a tick and its label, a label and the axis title */

enum { VA_TOP, VA_MIDDLE, VA_BASELINE, VA_BOTTOM };

static void set_font(canvas *cv, double size, int bold) {
    cairo_select_font_face(cv->cr, FONT_FAMILY, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cv->cr, size);
}

static double text_w(canvas *cv, const char *s, double size, int bold) {
    if (!has_text(s)) return 0;
    set_font(cv, size, bold);
    cairo_text_extents_t e;
    cairo_text_extents(cv->cr, s, &e);
    return e.x_advance;
}

/* Line height (ascent + descent) of the font. */
static double text_h(canvas *cv, double size) {
    set_font(cv, size, 0);
    cairo_font_extents_t fe;
    cairo_font_extents(cv->cr, &fe);
    return fe.ascent + fe.descent;
}

static void record_text(canvas *cv, const char *s) {
    if (gb_append(&cv->texts, s, strlen(s)) || gb_append(&cv->texts, "\n", 1)) cv->nomem = 1;
}

/* Draws s with its anchor at (x, y): ha = 0 left, 0.5 centre, 1 right of the text;
 * va one of VA_*; angle in radians, counter-clockwise on the page. */
static void draw_text(canvas *cv, const char *s, double x, double y, double size, int bold,
                      double ha, int va, double angle, rgb color) {
    if (!has_text(s)) return;
    cairo_t *cr = cv->cr;
    cairo_save(cr);
    set_font(cv, size, bold);
    cairo_text_extents_t e;
    cairo_font_extents_t fe;
    cairo_text_extents(cr, s, &e);
    cairo_font_extents(cr, &fe);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, -angle);
    double dy = 0;
    switch (va) {
    case VA_TOP:
        dy = fe.ascent;
        break;
    case VA_MIDDLE:
        dy = (fe.ascent - fe.descent) / 2;
        break;
    case VA_BOTTOM:
        dy = -fe.descent;
        break;
    default:
        break;
    }
    cairo_move_to(cr, -ha * e.x_advance, dy);
    set_rgb(cr, color);
    cairo_show_text(cr, s);
    cairo_restore(cr);
    record_text(cv, s);
}

/* s, or a copy in buf cut at a character boundary and ended with "…", whose width is at most
 * maxw. May return "" when even "…" does not fit. */
static const char *fit_text(canvas *cv, const char *s, double maxw, double size, int bold,
                            char *buf, size_t bufsz) {
    if (!has_text(s) || text_w(cv, s, size, bold) <= maxw) return s;
    size_t n = strlen(s);
    if (n + 4 > bufsz) n = bufsz - 4;
    while (n > 0) {
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--; /* a character start */
        size_t m = n;
        while (m > 0 && s[m - 1] == ' ')
            m--; /* "a …" reads worse than "a…" */
        memcpy(buf, s, m);
        memcpy(buf + m, "\xE2\x80\xA6", 4); /* "…" and the terminator */
        if (text_w(cv, buf, size, bold) <= maxw) return buf;
        n--;
    }
    return "";
}

/* The largest font size <= size (down to min) at which s fits in maxw. */
static double fit_size(canvas *cv, const char *s, double maxw, double size, double min, int bold) {
    while (size > min && text_w(cv, s, size, bold) > maxw)
        size -= 0.5;
    return size;
}

/* ---- axes ------------------------------------------------------------------------------ */

#define MAX_TICKS 32

typedef struct axis {
    double lo, hi;          /* data range shown */
    double tick[MAX_TICKS]; /* tick positions, data units */
    int n;
    int decimals; /* for the tick labels */
} axis;

typedef struct rect {
    double x, y, w, h;
} rect;

static double nice_step(double span, int target) {
    double raw = span / (target > 0 ? target : 1);
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    double nf = f < 1.5 ? 1 : f < 2.25 ? 2 : f < 3.5 ? 2.5 : f < 7.5 ? 5 : 10;
    return nf * mag;
}

/* Ticks at multiples of step inside [lo, hi], with enough decimals to tell them apart. */
static void axis_ticks_step(axis *a, double step) {
    a->n = 0;
    double k0 = ceil(a->lo / step - 1e-9);
    for (int k = 0; k < MAX_TICKS; k++) {
        double v = (k0 + k) * step;
        if (v > a->hi + step * 1e-9) break;
        a->tick[a->n++] = fabs(v) < step * 1e-9 ? 0.0 : v;
    }
    double e = floor(log10(step) + 1e-9);
    int d = e < 0 ? (int)-e : 0;
    double mant = step / pow(10, e);
    if (fabs(mant - 2.5) < 1e-6 && d >= 0 && e <= 0) d += 1;
    a->decimals = d > 6 ? 6 : d;
}

/* An axis over [dmin, dmax] widened to whole ticks (NaN = no data: [0, 1]). */
static void axis_auto(axis *a, double dmin, double dmax, int target) {
    if (!(isfinite(dmin) && isfinite(dmax))) dmin = 0, dmax = 1;
    if (dmin < -1e306) dmin = -1e306; /* keeps the span and the ticks finite */
    if (dmax > 1e306) dmax = 1e306;
    if (dmax - dmin <= 1e-12 * (fabs(dmin) + fabs(dmax)) || dmax - dmin < 1e-300) {
        double pad = fabs(dmin) > 0 ? fabs(dmin) * 0.1 : 0.5;
        dmin -= pad;
        dmax += pad;
    }
    double step = nice_step(dmax - dmin, target);
    a->lo = floor(dmin / step + 1e-9) * step;
    a->hi = ceil(dmax / step - 1e-9) * step;
    if (!(a->hi > a->lo)) a->hi = a->lo + step;
    axis_ticks_step(a, step);
}

/* Widens an automatic range by 3% at an end where the data would touch the frame
 * (the ticks stay where they are). */
static void axis_breathe(axis *a, double dmin, double dmax) {
    double span = a->hi - a->lo;
    if (isfinite(dmin) && dmin - a->lo < 0.02 * span) a->lo -= 0.03 * span;
    if (isfinite(dmax) && a->hi - dmax < 0.02 * span) a->hi += 0.03 * span;
}

/* An axis over a fixed range with ticks inside it. */
static void axis_fixed(axis *a, double lo, double hi, int target) {
    a->lo = lo;
    a->hi = hi;
    axis_ticks_step(a, nice_step(hi - lo, target));
}

static void tick_label(const axis *a, double v, char *buf, size_t n) {
    if (fabs(v) >= 1e6 || a->decimals >= 6)
        snprintf(buf, n, "%.3g", v);
    else
        snprintf(buf, n, "%.*f", a->decimals, v);
}

static double max_tick_w(canvas *cv, const axis *a) {
    char buf[64];
    double m = 0;
    for (int i = 0; i < a->n; i++) {
        tick_label(a, a->tick[i], buf, sizeof buf);
        double w = text_w(cv, buf, FS_TICK, 0);
        if (w > m) m = w;
    }
    return m;
}

static double map_x(const rect *r, const axis *a, double v) {
    return r->x + (v - a->lo) / (a->hi - a->lo) * r->w;
}

static double map_y(const rect *r, const axis *a, double v) {
    return r->y + r->h - (v - a->lo) / (a->hi - a->lo) * r->h;
}

/* Keeps a mapped coordinate of a filled shape (not clipped by us) within cairo's fixed-point
 * range at any allowed png_scale, so huge values stay drawable. */
static double clamp_px(double v, double size) {
    double lim = 4 * size + 30000;
    return v < -lim ? -lim : v > lim ? lim : v;
}

/* The same for line ends, which are clipped to the axes before cairo sees them. */
static double clamp_far(double v) {
    return v < -1e6 ? -1e6 : v > 1e6 ? 1e6 : v;
}

static void stroke_line(canvas *cv, double x0, double y0, double x1, double y1, rgb c, double lw) {
    cairo_t *cr = cv->cr;
    cairo_move_to(cr, x0, y0);
    cairo_line_to(cr, x1, y1);
    set_rgb(cr, c);
    cairo_set_line_width(cr, lw);
    cairo_stroke(cr);
}

/* Horizontal grid lines at the y ticks. */
static void draw_ygrid(canvas *cv, const rect *r, const axis *ay) {
    for (int i = 0; i < ay->n; i++) {
        double y = map_y(r, ay, ay->tick[i]);
        stroke_line(cv, r->x, y, r->x + r->w, y, grid, 0.6);
    }
}

/* The frame of a panel and its y tick marks, without labels (inner grid columns; draw_yaxis adds
 * the labels). */
static void draw_frame(canvas *cv, const rect *r, const axis *ay) {
    cairo_rectangle(cv->cr, r->x, r->y, r->w, r->h);
    set_rgb(cv->cr, ink);
    cairo_set_line_width(cv->cr, 0.9);
    cairo_stroke(cv->cr);
    for (int i = 0; i < ay->n; i++) {
        double y = map_y(r, ay, ay->tick[i]);
        stroke_line(cv, r->x - TICK_LEN, y, r->x, y, ink, 0.9);
    }
}

/* Frame, y ticks with labels at the left, and the rotated y label centred on the panel
 * with its left edge at label_x. */
static void draw_yaxis(canvas *cv, const rect *r, const axis *ay, const char *label,
                       double label_x) {
    char buf[64];
    draw_frame(cv, r, ay);
    for (int i = 0; i < ay->n; i++) {
        double y = map_y(r, ay, ay->tick[i]);
        tick_label(ay, ay->tick[i], buf, sizeof buf);
        draw_text(cv, buf, r->x - TICK_LEN - GAP, y, FS_TICK, 0, 1, VA_MIDDLE, 0, ink);
    }
    if (has_text(label)) {
        char fit[256];
        const char *s = fit_text(cv, label, r->h, FS_LABEL, 0, fit, sizeof fit);
        draw_text(cv, s, label_x, r->y + r->h / 2, FS_LABEL, 0, 0.5, VA_TOP, PLOT_PI / 2, ink);
    }
}

/* Liang-Barsky: clips the segment to r (in place); 0 when nothing is left. */
static int clip_segment(const rect *r, double *x0, double *y0, double *x1, double *y1) {
    double t0 = 0, t1 = 1, dx = *x1 - *x0, dy = *y1 - *y0;
    double p[4] = {-dx, dx, -dy, dy};
    double q[4] = {*x0 - r->x, r->x + r->w - *x0, *y0 - r->y, r->y + r->h - *y0};
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0) {
            if (q[i] < 0) return 0;
        } else {
            double t = q[i] / p[i];
            if (p[i] < 0) {
                if (t > t1) return 0;
                if (t > t0) t0 = t;
            } else {
                if (t < t0) return 0;
                if (t < t1) t1 = t;
            }
        }
    }
    double ax = *x0 + t0 * dx, ay = *y0 + t0 * dy, bx = *x0 + t1 * dx, by = *y0 + t1 * dy;
    *x0 = ax, *y0 = ay, *x1 = bx, *y1 = by;
    return 1;
}

/* ---- series ---------------------------------------------------------------------------- */

static double series_x(const plot_series *s, size_t i) {
    return s->x ? s->x[i] : (double)i;
}

static int point_ok(const plot_series *s, size_t i) {
    return isfinite(series_x(s, i)) && isfinite(s->y[i]);
}

/* A band needs its point too: a missing mean hides the spread at that x. */
static int band_ok(const plot_series *s, size_t i) {
    return s->lo && s->hi && point_ok(s, i) && isfinite(s->lo[i]) && isfinite(s->hi[i]);
}

/* Extends [*mn, *mx] by v when v is finite. */
static void widen(double *mn, double *mx, double v) {
    if (!isfinite(v)) return;
    if (!(v >= *mn)) *mn = v;
    if (!(v <= *mx)) *mx = v;
}

static void series_range(const plot_series *s, size_t ns, int want_x, double *mn, double *mx) {
    for (size_t k = 0; k < ns; k++)
        for (size_t i = 0; i < s[k].n; i++) {
            if (want_x) {
                if (point_ok(&s[k], i)) widen(mn, mx, series_x(&s[k], i));
            } else {
                if (point_ok(&s[k], i)) widen(mn, mx, s[k].y[i]);
                if (band_ok(&s[k], i)) {
                    widen(mn, mx, s[k].lo[i]);
                    widen(mn, mx, s[k].hi[i]);
                }
            }
        }
}

static void set_dash(cairo_t *cr, int dashed) {
    static const double dash[2] = {6.0, 3.5};
    cairo_set_dash(cr, dash, dashed ? 2 : 0, 0);
}

#define MARKER_R 2.8

static void draw_marker(canvas *cv, double x, double y, rgb c, int hollow) {
    cairo_t *cr = cv->cr;
    cairo_new_sub_path(cr);
    cairo_arc(cr, x, y, MARKER_R, 0, 2 * PLOT_PI);
    if (hollow) {
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_fill_preserve(cr);
        set_rgb(cr, c);
        cairo_set_line_width(cr, 1.3);
        set_dash(cr, 0);
        cairo_stroke(cr);
    } else {
        set_rgb(cr, c);
        cairo_fill(cr);
    }
}

/* Bands (under), then lines, then markers of every series, clipped to r. */
static void draw_series(canvas *cv, const rect *r, const axis *ax, const axis *ay,
                        const plot_series *s, size_t ns) {
    cairo_t *cr = cv->cr;
    cairo_save(cr);
    cairo_rectangle(cr, r->x, r->y, r->w, r->h);
    cairo_clip(cr);
    /* bands: one polygon per run of consecutive points with a finite band */
    for (size_t k = 0; k < ns; k++) {
        const plot_series *sk = &s[k];
        rgb c = series_color(sk, k);
        size_t i = 0;
        while (i < sk->n) {
            if (!band_ok(sk, i)) {
                i++;
                continue;
            }
            size_t j = i;
            while (j + 1 < sk->n && band_ok(sk, j + 1))
                j++;
            if (j == i) { /* a lone point: an error bar */
                double x = clamp_px(map_x(r, ax, series_x(sk, i)), cv->w);
                double y0 = clamp_px(map_y(r, ay, sk->lo[i]), cv->h);
                double y1 = clamp_px(map_y(r, ay, sk->hi[i]), cv->h);
                cairo_move_to(cr, x - 3, y0);
                cairo_line_to(cr, x + 3, y0);
                cairo_move_to(cr, x, y0);
                cairo_line_to(cr, x, y1);
                cairo_move_to(cr, x - 3, y1);
                cairo_line_to(cr, x + 3, y1);
                set_rgba(cr, c, 0.6);
                set_dash(cr, 0);
                cairo_set_line_width(cr, 1.2);
                cairo_stroke(cr);
            } else {
                for (size_t t = i; t <= j; t++)
                    cairo_line_to(cr, clamp_px(map_x(r, ax, series_x(sk, t)), cv->w),
                                  clamp_px(map_y(r, ay, sk->hi[t]), cv->h));
                for (size_t t = j + 1; t-- > i;)
                    cairo_line_to(cr, clamp_px(map_x(r, ax, series_x(sk, t)), cv->w),
                                  clamp_px(map_y(r, ay, sk->lo[t]), cv->h));
                cairo_close_path(cr);
                set_rgba(cr, c, sk->dashed ? 0.10 : 0.18);
                cairo_fill(cr);
            }
            i = j + 1;
        }
    }
    /* lines: segments between consecutive finite points; a NaN breaks the line */
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    for (size_t k = 0; k < ns; k++) {
        const plot_series *sk = &s[k];
        rect big = {r->x - 20, r->y - 20, r->w + 40, r->h + 40};
        int pen = 0; /* a path is open and ends at the last point drawn */
        for (size_t i = 0; i + 1 < sk->n; i++) {
            if (!point_ok(sk, i) || !point_ok(sk, i + 1)) {
                pen = 0;
                continue;
            }
            /* clamped far outside (a sub-pixel change of what is visible) so that the
             * clipping below stays exact for values like 1e300 */
            double x0 = clamp_far(map_x(r, ax, series_x(sk, i)));
            double y0 = clamp_far(map_y(r, ay, sk->y[i]));
            double x1 = clamp_far(map_x(r, ax, series_x(sk, i + 1)));
            double y1 = clamp_far(map_y(r, ay, sk->y[i + 1]));
            double cx0 = x0, cy0 = y0, cx1 = x1, cy1 = y1;
            if (!clip_segment(&big, &cx0, &cy0, &cx1, &cy1)) {
                pen = 0;
                continue;
            }
            if (!pen || cx0 != x0 || cy0 != y0) cairo_move_to(cr, cx0, cy0);
            cairo_line_to(cr, cx1, cy1);
            pen = (cx1 == x1 && cy1 == y1);
        }
        set_rgb(cr, series_color(sk, k));
        set_dash(cr, sk->dashed);
        cairo_set_line_width(cr, 1.8);
        cairo_stroke(cr);
    }
    cairo_restore(cr);
    /* markers, unclipped but only for points inside the axes */
    for (size_t k = 0; k < ns; k++) {
        const plot_series *sk = &s[k];
        for (size_t i = 0; i < sk->n; i++) {
            if (!point_ok(sk, i)) continue;
            double x = map_x(r, ax, series_x(sk, i)), y = map_y(r, ay, sk->y[i]);
            if (x < r->x - 0.01 || x > r->x + r->w + 0.01 || y < r->y - 0.01 ||
                y > r->y + r->h + 0.01)
                continue;
            draw_marker(cv, x, y, series_color(sk, k), sk->dashed);
        }
    }
}

/* ---- legend ---------------------------------------------------------------------------- */

#define LEG_SAMPLE 30.0 /* length of the sample line */

typedef struct legend_entry {
    const char *name;
    rgb color;
    int color_key; /* palette index, for deduplication */
    int dashed;
    int band;
} legend_entry;

typedef struct legend {
    legend_entry *e;
    size_t n;
    int any_band;
    const char *note;   /* drawn under the entries when any_band */
    size_t ncols, rows; /* entries fill columns of `rows` rows */
    double w, h, row_h, text_max, col_w;
} legend;

/* Distinct named (name, colour, dashed) series of the panels, in order of appearance. */
static int legend_build(legend *lg, const plot_panel *p, size_t np) {
    size_t total = 0;
    memset(lg, 0, sizeof *lg);
    for (size_t q = 0; q < np; q++)
        total += p[q].n_series;
    if (total == 0) return 0;
    if (total > ((size_t)-1) / sizeof *lg->e) return -1;
    lg->e = PLOT_REALLOC(NULL, total * sizeof *lg->e);
    if (!lg->e) return -1;
    memset(lg->e, 0, total * sizeof *lg->e);
    for (size_t q = 0; q < np; q++)
        for (size_t k = 0; k < p[q].n_series; k++) {
            const plot_series *s = &p[q].series[k];
            int has_band = 0;
            for (size_t i = 0; i < s->n && !has_band; i++)
                has_band = band_ok(s, i);
            lg->any_band |= has_band;
            if (!has_text(s->name)) continue;
            int key = s->color > 0 ? (s->color - 1) % PLOT_NCOLORS : (int)(k % PLOT_NCOLORS);
            size_t d;
            for (d = 0; d < lg->n; d++)
                if (lg->e[d].color_key == key && !lg->e[d].dashed == !s->dashed &&
                    strcmp(lg->e[d].name, s->name) == 0)
                    break;
            if (d < lg->n) {
                lg->e[d].band |= has_band;
                continue;
            }
            lg->e[lg->n++] =
                (legend_entry){s->name, series_color(s, k), key, s->dashed != 0, has_band};
        }
    return 0;
}

static const char *const default_band_note = "bands: mean \xC2\xB1 spread";

/* Lays the legend out in as few columns as fit in max_h (entries fill columns top to
 * bottom); each column's text may take at most maxw points. */
static void legend_measure(canvas *cv, legend *lg, double maxw, double max_h) {
    lg->row_h = text_h(cv, FS_LEGEND) + 4;
    lg->text_max = 0;
    lg->ncols = 1;
    lg->rows = lg->n;
    if (lg->n == 0 && !lg->any_band) {
        lg->w = lg->h = 0;
        return;
    }
    for (size_t i = 0; i < lg->n; i++) {
        double w = text_w(cv, lg->e[i].name, FS_LEGEND, 0);
        if (w > lg->text_max) lg->text_max = w;
    }
    if (lg->text_max > maxw) lg->text_max = maxw;
    size_t fit_rows = (size_t)fmax(1.0, floor((max_h - 10) / lg->row_h) - 1); /* minus note */
    if (lg->n > fit_rows) {
        lg->ncols = (lg->n + fit_rows - 1) / fit_rows;
        lg->rows = (lg->n + lg->ncols - 1) / lg->ncols;
    }
    /* several columns share the width one column would get: at most 45% of the figure */
    double cap = 0.45 * cv->w / (double)lg->ncols - (LEG_SAMPLE + 6 + 12);
    if (lg->ncols > 1 && lg->text_max > cap) lg->text_max = fmax(cap, 40.0);
    lg->col_w = LEG_SAMPLE + 6 + lg->text_max + 12;
    double note = lg->any_band ? text_w(cv, lg->note, FS_LEGEND - 1, 0) + 16 : 0;
    lg->w = fmax((double)lg->ncols * lg->col_w + 4, note);
    lg->h = lg->row_h * (double)(lg->rows + (lg->any_band ? 1u : 0u)) + 10;
}

static void legend_draw(canvas *cv, const legend *lg, double x, double y) {
    cairo_t *cr = cv->cr;
    if (lg->w <= 0) return;
    cairo_rectangle(cr, x, y, lg->w, lg->h);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_fill_preserve(cr);
    set_rgb(cr, grid);
    cairo_set_line_width(cr, 0.8);
    set_dash(cr, 0);
    cairo_stroke(cr);
    char buf[256];
    for (size_t i = 0; i < lg->n; i++) {
        const legend_entry *e = &lg->e[i];
        size_t col = i / lg->rows, row = i % lg->rows;
        double cy = y + 5 + lg->row_h * ((double)row + 0.5);
        double sx = x + 8 + (double)col * lg->col_w;
        if (e->band) {
            cairo_rectangle(cr, sx, cy - 4.5, LEG_SAMPLE, 9);
            set_rgba(cr, e->color, e->dashed ? 0.10 : 0.18);
            cairo_fill(cr);
        }
        cairo_move_to(cr, sx, cy);
        cairo_line_to(cr, sx + LEG_SAMPLE, cy);
        set_rgb(cr, e->color);
        set_dash(cr, e->dashed);
        cairo_set_line_width(cr, 1.8);
        cairo_stroke(cr);
        set_dash(cr, 0);
        draw_marker(cv, sx + LEG_SAMPLE / 2, cy, e->color, e->dashed);
        const char *s = fit_text(cv, e->name, lg->text_max, FS_LEGEND, 0, buf, sizeof buf);
        draw_text(cv, s, sx + LEG_SAMPLE + 6, cy, FS_LEGEND, 0, 0, VA_MIDDLE, 0, ink);
    }
    if (lg->any_band) {
        double cy = y + 5 + lg->row_h * ((double)lg->rows + 0.5);
        draw_text(cv, lg->note, x + 8, cy, FS_LEGEND - 1, 0, 0, VA_MIDDLE, 0, faint);
    }
}

/* ---- title ----------------------------------------------------------------------------- */

/* Height taken by the title (0 without one). */
static double title_h(canvas *cv, const char *title) {
    return has_text(title) ? text_h(cv, FS_TITLE) + 6 : 0;
}

static void draw_title(canvas *cv, const char *title) {
    if (!has_text(title)) return;
    double maxw = cv->w - 2 * PAD;
    double size = fit_size(cv, title, maxw, FS_TITLE, 8, 1);
    char buf[512];
    const char *s = fit_text(cv, title, maxw, size, 1, buf, sizeof buf);
    draw_text(cv, s, cv->w / 2, PAD, size, 1, 0.5, VA_TOP, 0, ink);
}

/* ---- x axis with category or numeric ticks --------------------------------------------- */

#define SLANT (35.0 * PLOT_PI / 180.0)

typedef struct xaxis {
    axis a;
    const char *const *cats; /* category names (NULL: numbers) when categorical */
    size_t ncat;             /* 0 = numeric axis */
    int slanted;             /* category labels drawn at SLANT */
    double label_maxw;       /* widest tick label, after ellipsis */
} xaxis;

static const char *xtick_text(const xaxis *xa, int i, char *buf, size_t n) {
    if (xa->ncat) {
        if (xa->cats && xa->cats[i]) return xa->cats[i];
        snprintf(buf, n, "%d", i);
        return buf;
    }
    tick_label(&xa->a, xa->a.tick[i], buf, n);
    return buf;
}

#define XLABEL_MAXW 160.0 /* category labels longer than this are cut with an ellipsis */

/* Decides slanting from the spacing of the ticks over plot width pw. */
static void xaxis_layout(canvas *cv, xaxis *xa, double pw) {
    char buf[64];
    double maxw = 0;
    for (int i = 0; i < xa->a.n; i++) {
        double w = text_w(cv, xtick_text(xa, i, buf, sizeof buf), FS_TICK, 0);
        if (w > maxw) maxw = w;
    }
    xa->label_maxw = maxw > XLABEL_MAXW ? XLABEL_MAXW : maxw;
    double spacing =
        xa->a.n > 1 ? pw * (xa->a.tick[1] - xa->a.tick[0]) / (xa->a.hi - xa->a.lo) : pw;
    /* once slanted, stay slanted: margins only grow, so the spacing only shrinks */
    xa->slanted = xa->slanted || (xa->ncat && xa->label_maxw > 0.8 * spacing);
}

/* Vertical room the tick labels take below the axis. */
static double xaxis_label_h(canvas *cv, const xaxis *xa) {
    double th = text_h(cv, FS_TICK);
    if (!xa->slanted) return th;
    return xa->label_maxw * sin(SLANT) + th * cos(SLANT);
}

/* Room a slanted first label takes to the left of its tick. */
static double xaxis_left_overhang(canvas *cv, const xaxis *xa) {
    if (!xa->slanted || xa->a.n == 0) return 0;
    char buf[64];
    double w = text_w(cv, xtick_text(xa, 0, buf, sizeof buf), FS_TICK, 0);
    if (w > xa->label_maxw) w = xa->label_maxw;
    return w * cos(SLANT) + text_h(cv, FS_TICK) * sin(SLANT);
}

/* Widens the left and right margins so that the first and last tick labels stay inside the
 * figure of width fw; decides slanting first. */
static void xaxis_fit_margins(canvas *cv, xaxis *xa, double *left, double *right, double fw) {
    char buf[64];
    for (int pass = 0; pass < 3; pass++) { /* later passes see the widened margins */
        double pw = fw - *left - *right;
        xaxis_layout(cv, xa, pw);
        if (xa->a.n == 0) return;
        double first = (xa->a.tick[0] - xa->a.lo) / (xa->a.hi - xa->a.lo) * pw;
        double last = (xa->a.hi - xa->a.tick[xa->a.n - 1]) / (xa->a.hi - xa->a.lo) * pw;
        double w0 =
            fmin(text_w(cv, xtick_text(xa, 0, buf, sizeof buf), FS_TICK, 0), xa->label_maxw);
        double w1 = fmin(text_w(cv, xtick_text(xa, xa->a.n - 1, buf, sizeof buf), FS_TICK, 0),
                         xa->label_maxw);
        double need_l = PAD + (xa->slanted ? xaxis_left_overhang(cv, xa) : w0 / 2) - first;
        double need_r = xa->slanted ? 0 : PAD + w1 / 2 - last;
        if (need_l > *left) *left = need_l;
        if (need_r > *right) *right = need_r;
    }
}

static void draw_xticks(canvas *cv, const rect *r, const xaxis *xa, int labels, int gridlines) {
    char buf[64], fit[256];
    for (int i = 0; i < xa->a.n; i++) {
        double x = map_x(r, &xa->a, xa->a.tick[i]);
        if (gridlines) stroke_line(cv, x, r->y, x, r->y + r->h, grid, 0.6);
    }
    for (int i = 0; i < xa->a.n; i++) {
        double x = map_x(r, &xa->a, xa->a.tick[i]);
        double yb = r->y + r->h;
        stroke_line(cv, x, yb, x, yb + TICK_LEN, ink, 0.9);
        if (!labels) continue;
        const char *s = fit_text(cv, xtick_text(xa, i, buf, sizeof buf), xa->label_maxw, FS_TICK, 0,
                                 fit, sizeof fit);
        if (xa->slanted)
            draw_text(cv, s, x + 3, yb + TICK_LEN + 2, FS_TICK, 0, 1, VA_TOP, SLANT, ink);
        else
            draw_text(cv, s, x, yb + TICK_LEN + GAP - 2, FS_TICK, 0, 0.5, VA_TOP, 0, ink);
    }
}

/* ---- line figures (retention, severity) ------------------------------------------------ */

#define MAX_PANELS 4
#define PANEL_GAP 14.0

static plot_status check_series(const char *path, const plot_series *s, size_t ns,
                                size_t max_implicit, int need_x) {
    if (ns > 0 && !s) return fail(PLOT_ERR_ARG, path, "series is NULL with n_series = %zu", ns);
    for (size_t k = 0; k < ns; k++) {
        const char *nm = has_text(s[k].name) ? s[k].name : "(unnamed)";
        if (s[k].n == 0) continue;
        if (!s[k].y)
            return fail(PLOT_ERR_ARG, path, "series %zu '%s' has n = %zu but no y values", k, nm,
                        s[k].n);
        if (need_x && !s[k].x)
            return fail(PLOT_ERR_ARG, path, "series %zu '%s' has no x values", k, nm);
        if (!s[k].x && s[k].n > max_implicit)
            return fail(PLOT_ERR_ARG, path,
                        "series %zu '%s' has %zu points but there are only %zu stages", k, nm,
                        s[k].n, max_implicit);
        if ((s[k].lo == NULL) != (s[k].hi == NULL))
            return fail(PLOT_ERR_ARG, path,
                        "series %zu '%s' has only one of lo/hi; give both or neither", k, nm);
    }
    return PLOT_OK;
}

/* Whether every finite x of every series is a whole number. */
static int all_x_whole(const plot_panel *p, size_t np) {
    for (size_t q = 0; q < np; q++)
        for (size_t k = 0; k < p[q].n_series; k++)
            for (size_t i = 0; i < p[q].series[k].n; i++) {
                double x = series_x(&p[q].series[k], i);
                if (isfinite(x) && x != floor(x)) return 0;
            }
    return 1;
}

/* Stacked panels over one x axis: categorical (ncat > 0, names cats) or numeric. */
static plot_status line_figure(const plot_figure *fig, const plot_panel *panels, size_t np,
                               const char *const *cats, size_t ncat, double def_h) {
    canvas cv;
    plot_status st = canvas_open(&cv, fig, 720, def_h);
    if (st) return st;

    /* y axes */
    axis ay[MAX_PANELS];
    double ytw = 0;
    int any_ylabel = 0;
    for (size_t q = 0; q < np; q++) {
        const plot_panel *p = &panels[q];
        if (fixed_range(p->ymin, p->ymax))
            axis_fixed(&ay[q], p->ymin, p->ymax, np > 2 ? 4 : 5);
        else {
            double mn = NAN, mx = NAN;
            series_range(p->series, p->n_series, 0, &mn, &mx);
            axis_auto(&ay[q], mn, mx, np > 2 ? 4 : 5);
            axis_breathe(&ay[q], mn, mx);
        }
        double w = max_tick_w(&cv, &ay[q]);
        if (w > ytw) ytw = w;
        any_ylabel |= has_text(p->ylabel ? p->ylabel : fig->ylabel);
    }

    /* x axis */
    xaxis xa;
    memset(&xa, 0, sizeof xa);
    xa.cats = cats;
    xa.ncat = ncat;
    if (ncat) {
        double pad = ncat > 1 ? 0.3 : 0.5;
        xa.a.lo = -pad;
        xa.a.hi = (double)(ncat - 1) + pad;
        xa.a.n = 0;
        for (size_t i = 0; i < ncat && i < MAX_TICKS; i++)
            xa.a.tick[xa.a.n++] = (double)i;
    } else {
        double mn = NAN, mx = NAN;
        for (size_t q = 0; q < np; q++)
            series_range(panels[q].series, panels[q].n_series, 1, &mn, &mx);
        axis_auto(&xa.a, mn, mx, 6);
        if (xa.a.n > 1 && xa.a.tick[1] - xa.a.tick[0] < 1 && all_x_whole(panels, np))
            axis_ticks_step(&xa.a, 1); /* severity levels 0, 1, 2, ...: no half ticks */
        axis_breathe(&xa.a, mn, mx);
    }

    /* legend */
    legend lg;
    if (legend_build(&lg, panels, np)) {
        canvas_abort(&cv);
        return fail(PLOT_ERR_NOMEM, fig->path, "out of memory for the legend");
    }
    lg.note = has_text(fig->band_note) ? fig->band_note : default_band_note;
    /* margins */
    double lab_h = text_h(&cv, FS_LABEL);
    double top = PAD + title_h(&cv, fig->title) + 6;
    legend_measure(&cv, &lg, 0.3 * cv.w - (LEG_SAMPLE + 6 + 16), cv.h - top - PAD);
    double left = PAD + (any_ylabel ? lab_h + GAP : 0) + ytw + GAP + TICK_LEN;
    double right = lg.w > 0 ? lg.w + 2 * PAD : PAD;
    double pw;
    xaxis_fit_margins(&cv, &xa, &left, &right, cv.w);
    pw = cv.w - left - right;
    double bottom =
        PAD + (has_text(fig->xlabel) ? lab_h + GAP : 0) + xaxis_label_h(&cv, &xa) + TICK_LEN + GAP;
    double ph_total = cv.h - top - bottom;
    double ph = (ph_total - PANEL_GAP * (double)(np - 1)) / (double)np;
    if (pw < 60 || ph < 40) {
        canvas_abort(&cv);
        free(lg.e);
        return fail(PLOT_ERR_ARG, fig->path,
                    "figure %g x %g points is too small for its labels and legend (plot area "
                    "%.0f x %.0f); enlarge fig.width/height or shorten the labels",
                    cv.w, cv.h, pw, ph);
    }

    /* draw */
    draw_title(&cv, fig->title);
    for (size_t q = 0; q < np; q++) {
        rect r = {left, top + (double)q * (ph + PANEL_GAP), pw, ph};
        draw_ygrid(&cv, &r, &ay[q]);
        draw_xticks(&cv, &r, &xa, q + 1 == np, ncat > 0);
        draw_series(&cv, &r, &xa.a, &ay[q], panels[q].series, panels[q].n_series);
        const char *yl = panels[q].ylabel ? panels[q].ylabel : fig->ylabel;
        draw_yaxis(&cv, &r, &ay[q], yl, PAD);
    }
    if (has_text(fig->xlabel)) {
        char buf[256];
        const char *s = fit_text(&cv, fig->xlabel, pw, FS_LABEL, 0, buf, sizeof buf);
        draw_text(&cv, s, left + pw / 2, cv.h - PAD, FS_LABEL, 0, 0.5, VA_BOTTOM, 0, ink);
    }
    legend_draw(&cv, &lg, cv.w - right + PAD, top);
    free(lg.e);
    return canvas_close(&cv);
}

plot_status plot_retention_curves(const plot_figure *fig, const char *const *stage_names,
                                  size_t n_stages, const plot_panel *panels, size_t n_panels) {
    const char *path = fig ? fig->path : NULL;
    if (!fig) return fail(PLOT_ERR_ARG, NULL, "no figure given (fig is NULL)");
    if (n_stages == 0 || n_stages > MAX_TICKS)
        return fail(PLOT_ERR_ARG, path, "n_stages = %zu; need 1..%d stages", n_stages, MAX_TICKS);
    if (!panels || n_panels == 0 || n_panels > MAX_PANELS)
        return fail(PLOT_ERR_ARG, path, "need 1..%d panels (got %zu%s)", MAX_PANELS, n_panels,
                    panels ? "" : ", panels is NULL");
    for (size_t q = 0; q < n_panels; q++) {
        plot_status st = check_series(path, panels[q].series, panels[q].n_series, n_stages, 0);
        if (st) return st;
    }
    return line_figure(fig, panels, n_panels, stage_names, n_stages, 520);
}

plot_status plot_severity_curves(const plot_figure *fig, const plot_series *series,
                                 size_t n_series) {
    if (!fig) return fail(PLOT_ERR_ARG, NULL, "no figure given (fig is NULL)");
    plot_status st = check_series(fig->path, series, n_series, 0, 1);
    if (st) return st;
    plot_panel p = {fig->ylabel, fig->ymin, fig->ymax, series, n_series};
    return line_figure(fig, &p, 1, NULL, 0, 450);
}

/* ---- retention grid -------------------------------------------------------------------- */

#define GRID_MAX_COLS 8
#define GRID_COL_GAP 18.0

plot_status plot_retention_grid(const plot_figure *fig, const plot_grid_column *cols, size_t n_cols,
                                size_t n_rows) {
    const char *path = fig ? fig->path : NULL;
    if (!fig) return fail(PLOT_ERR_ARG, NULL, "no figure given (fig is NULL)");
    if (!cols || n_cols == 0 || n_cols > GRID_MAX_COLS)
        return fail(PLOT_ERR_ARG, path, "need 1..%d columns (got %zu%s)", GRID_MAX_COLS, n_cols,
                    cols ? "" : ", cols is NULL");
    if (n_rows == 0 || n_rows > MAX_PANELS)
        return fail(PLOT_ERR_ARG, path, "need 1..%d rows (got %zu)", MAX_PANELS, n_rows);
    for (size_t c = 0; c < n_cols; c++) {
        if (cols[c].n_stages == 0 || cols[c].n_stages > MAX_TICKS)
            return fail(PLOT_ERR_ARG, path, "column %zu has n_stages = %zu; need 1..%d stages", c,
                        cols[c].n_stages, MAX_TICKS);
        if (!cols[c].panels) return fail(PLOT_ERR_ARG, path, "column %zu has no panels (NULL)", c);
        for (size_t r = 0; r < n_rows; r++) {
            plot_status st = check_series(path, cols[c].panels[r].series,
                                          cols[c].panels[r].n_series, cols[c].n_stages, 0);
            if (st) return st;
        }
    }
    canvas cv;
    plot_status st = canvas_open(&cv, fig, 300 + 170 * (double)n_cols, 80 + 140 * (double)n_rows);
    if (st) return st;

    /* one y axis per row */
    axis ay[MAX_PANELS];
    double ytw = 0;
    int any_ylabel = 0;
    for (size_t r = 0; r < n_rows; r++) {
        const plot_panel *p0 = &cols[0].panels[r];
        if (fixed_range(p0->ymin, p0->ymax))
            axis_fixed(&ay[r], p0->ymin, p0->ymax, 4);
        else {
            double mn = NAN, mx = NAN;
            for (size_t c = 0; c < n_cols; c++)
                series_range(cols[c].panels[r].series, cols[c].panels[r].n_series, 0, &mn, &mx);
            axis_auto(&ay[r], mn, mx, 4);
            axis_breathe(&ay[r], mn, mx);
        }
        double w = max_tick_w(&cv, &ay[r]);
        if (w > ytw) ytw = w;
        any_ylabel |= has_text(p0->ylabel ? p0->ylabel : fig->ylabel);
    }

    /* one categorical x axis per column */
    xaxis xa[GRID_MAX_COLS];
    int any_ctitle = 0;
    for (size_t c = 0; c < n_cols; c++) {
        memset(&xa[c], 0, sizeof xa[c]);
        xa[c].cats = cols[c].stage_names;
        xa[c].ncat = cols[c].n_stages;
        double pad = xa[c].ncat > 1 ? 0.3 : 0.5;
        xa[c].a.lo = -pad;
        xa[c].a.hi = (double)(xa[c].ncat - 1) + pad;
        for (size_t i = 0; i < xa[c].ncat; i++)
            xa[c].a.tick[xa[c].a.n++] = (double)i;
        any_ctitle |= has_text(cols[c].title);
    }

    /* legend: the distinct series of every panel */
    if (n_cols * n_rows > ((size_t)-1) / sizeof(plot_panel)) {
        canvas_abort(&cv);
        return fail(PLOT_ERR_NOMEM, path, "too many panels");
    }
    plot_panel *all = PLOT_REALLOC(NULL, n_cols * n_rows * sizeof *all);
    legend lg;
    int bad = !all;
    if (all) {
        for (size_t c = 0; c < n_cols; c++)
            for (size_t r = 0; r < n_rows; r++)
                all[c * n_rows + r] = cols[c].panels[r];
        bad = legend_build(&lg, all, n_cols * n_rows);
        free(all);
    }
    if (bad) {
        canvas_abort(&cv);
        return fail(PLOT_ERR_NOMEM, path, "out of memory for the legend");
    }
    lg.note = has_text(fig->band_note) ? fig->band_note : default_band_note;

    /* margins */
    double lab_h = text_h(&cv, FS_LABEL);
    double ctitle_h = any_ctitle ? text_h(&cv, FS_LABEL) + GAP : 0;
    double top = PAD + title_h(&cv, fig->title) + ctitle_h + 4;
    legend_measure(&cv, &lg, 0.25 * cv.w - (LEG_SAMPLE + 6 + 16), cv.h - top - PAD);
    double left = PAD + (any_ylabel ? lab_h + GAP : 0) + ytw + GAP + TICK_LEN;
    double right = lg.w > 0 ? lg.w + 2 * PAD : PAD;
    double cw = 0, xl_h = 0;
    for (int pass = 0; pass < 2; pass++) { /* slanting first, then the room it takes */
        cw = (cv.w - left - right - GRID_COL_GAP * (double)(n_cols - 1)) / (double)n_cols;
        xl_h = 0;
        for (size_t c = 0; c < n_cols; c++) {
            xaxis_layout(&cv, &xa[c], cw);
            if (xaxis_label_h(&cv, &xa[c]) > xl_h) xl_h = xaxis_label_h(&cv, &xa[c]);
        }
        if (PAD + xaxis_left_overhang(&cv, &xa[0]) > left)
            left = PAD + xaxis_left_overhang(&cv, &xa[0]);
    }
    double bottom = PAD + (has_text(fig->xlabel) ? lab_h + GAP : 0) + xl_h + TICK_LEN + GAP;
    double ph = (cv.h - top - bottom - PANEL_GAP * (double)(n_rows - 1)) / (double)n_rows;
    if (cw < 50 || ph < 30) {
        canvas_abort(&cv);
        free(lg.e);
        return fail(PLOT_ERR_ARG, path,
                    "figure %g x %g points is too small for a %zu x %zu grid, its labels and "
                    "legend (panels %.0f x %.0f); enlarge fig.width/height or shorten the labels",
                    cv.w, cv.h, n_rows, n_cols, cw, ph);
    }

    /* draw */
    draw_title(&cv, fig->title);
    for (size_t c = 0; c < n_cols; c++) {
        const double x0 = left + (double)c * (cw + GRID_COL_GAP);
        if (has_text(cols[c].title)) {
            char buf[256];
            const char *s = fit_text(&cv, cols[c].title, cw, FS_LABEL, 1, buf, sizeof buf);
            draw_text(&cv, s, x0 + cw / 2, top - ctitle_h - 2, FS_LABEL, 1, 0.5, VA_TOP, 0, ink);
        }
        for (size_t r = 0; r < n_rows; r++) {
            rect rc = {x0, top + (double)r * (ph + PANEL_GAP), cw, ph};
            const plot_panel *p = &cols[c].panels[r];
            draw_ygrid(&cv, &rc, &ay[r]);
            draw_xticks(&cv, &rc, &xa[c], r + 1 == n_rows, 1);
            draw_series(&cv, &rc, &xa[c].a, &ay[r], p->series, p->n_series);
            if (c == 0) {
                const char *yl = p->ylabel ? p->ylabel : fig->ylabel;
                draw_yaxis(&cv, &rc, &ay[r], yl, PAD);
            } else {
                draw_frame(&cv, &rc, &ay[r]);
            }
        }
    }
    if (has_text(fig->xlabel)) {
        char buf[256];
        double gw = (double)n_cols * cw + GRID_COL_GAP * (double)(n_cols - 1);
        const char *s = fit_text(&cv, fig->xlabel, gw, FS_LABEL, 0, buf, sizeof buf);
        draw_text(&cv, s, left + gw / 2, cv.h - PAD, FS_LABEL, 0, 0.5, VA_BOTTOM, 0, ink);
    }
    legend_draw(&cv, &lg, cv.w - right + PAD, top);
    free(lg.e);
    return canvas_close(&cv);
}

/* ---- reliability diagram --------------------------------------------------------------- */

static const rgb bar_fill = {0.000, 0.447, 0.698}; /* palette blue */
static const rgb gap_fill = {0.835, 0.369, 0.000}; /* palette vermillion */
static const rgb hist_fill = {0.55, 0.60, 0.68};

static void fill_rect(canvas *cv, double x0, double y0, double x1, double y1, rgb c, double a,
                      rgb edge, double lw) {
    cairo_t *cr = cv->cr;
    cairo_rectangle(cr, fmin(x0, x1), fmin(y0, y1), fabs(x1 - x0), fabs(y1 - y0));
    set_rgba(cr, c, a);
    if (lw > 0) {
        cairo_fill_preserve(cr);
        set_rgb(cr, edge);
        cairo_set_line_width(cr, lw);
        set_dash(cr, 0);
        cairo_stroke(cr);
    } else {
        cairo_fill(cr);
    }
}

/* Keeps a bin value inside [0, 1] for drawing (out-of-range confidences exist). */
static double unit(double v) {
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

plot_status plot_reliability_diagram(const plot_figure *fig, const metrics_bin bins[METRICS_NBINS],
                                     double ece) {
    if (!fig) return fail(PLOT_ERR_ARG, NULL, "no figure given (fig is NULL)");
    if (!bins) return fail(PLOT_ERR_ARG, fig->path, "bins is NULL");
    size_t n = 0, maxc = 0;
    double ece_bins = 0;
    for (int b = 0; b < METRICS_NBINS; b++) {
        n += bins[b].count;
        if (bins[b].count > maxc) maxc = bins[b].count;
    }
    for (int b = 0; b < METRICS_NBINS; b++)
        if (bins[b].count > 0 && isfinite(bins[b].mean_conf) && isfinite(bins[b].accuracy))
            ece_bins +=
                (double)bins[b].count / (double)n * fabs(bins[b].mean_conf - bins[b].accuracy);
    if (isnan(ece)) ece = n > 0 ? ece_bins : NAN;

    canvas cv;
    plot_status st = canvas_open(&cv, fig, 520, 600);
    if (st) return st;
    const char *xl = fig->xlabel ? fig->xlabel : "confidence";
    const char *yl = fig->ylabel ? fig->ylabel : "accuracy";

    axis ay, ah, ax;
    axis_fixed(&ay, 0, 1, 5);
    axis_auto(&ah, 0, maxc > 0 ? (double)maxc * 1.08 : 1, 3); /* headroom over the top bar */
    ah.lo = 0;
    if (ah.n > 1 && ah.tick[1] - ah.tick[0] < 1) { /* counts are whole numbers */
        ah.hi = ceil(ah.hi);
        axis_ticks_step(&ah, 1);
    }
    axis_fixed(&ax, 0, 1, 10);

    /* subtitle and the legend row */
    char sub[128];
    if (isfinite(ece))
        snprintf(sub, sizeof sub, "ECE = %.4f    n = %zu", ece, n);
    else
        snprintf(sub, sizeof sub, "ECE = n/a    n = %zu", n);
    double lab_h = text_h(&cv, FS_LABEL), sub_h = text_h(&cv, FS_SUB);
    double leg_h = text_h(&cv, FS_LEGEND);
    double top = PAD + title_h(&cv, fig->title);
    double sub_y = top;
    double leg_y = sub_y + sub_h + 4;
    top = leg_y + leg_h + 10;
    double ytw = fmax(max_tick_w(&cv, &ay), max_tick_w(&cv, &ah));
    double left = PAD + lab_h + GAP + ytw + GAP + TICK_LEN;
    char last[16];
    tick_label(&ax, 1.0, last, sizeof last);
    double right = PAD + text_w(&cv, last, FS_TICK, 0) / 2 + 4;
    double bottom = PAD + (has_text(xl) ? lab_h + GAP : 0) + text_h(&cv, FS_TICK) + TICK_LEN + GAP;
    double pw = cv.w - left - right;
    double avail = cv.h - top - bottom - PANEL_GAP;
    double ph_top = avail * 0.72, ph_hist = avail - ph_top;
    /* tick every 0.1 (the bin edges) when the labels fit, else every 0.2 */
    if (pw / 10 < text_w(&cv, "0.0", FS_TICK, 0) * 1.6) axis_ticks_step(&ax, 0.2);
    if (pw < 60 || ph_hist < 30) {
        canvas_abort(&cv);
        return fail(PLOT_ERR_ARG, fig->path,
                    "figure %g x %g points is too small for a reliability diagram; enlarge "
                    "fig.width/height",
                    cv.w, cv.h);
    }
    rect rt = {left, top, pw, ph_top};
    rect rh = {left, top + ph_top + PANEL_GAP, pw, ph_hist};

    draw_title(&cv, fig->title);
    draw_text(&cv, sub, left + pw / 2, sub_y, FS_SUB, 0, 0.5, VA_TOP, 0, ink);

    /* legend row, centred over the plot */
    const char *names[3] = {"accuracy", "gap to mean confidence", "perfect calibration"};
    double sw = 14, widths = 0;
    for (int i = 0; i < 3; i++)
        widths += sw + 5 + text_w(&cv, names[i], FS_LEGEND, 0) + (i < 2 ? 16 : 0);
    double lx = left + (pw - widths) / 2;
    if (lx < PAD) lx = PAD;
    double ly = leg_y + leg_h / 2;
    for (int i = 0; i < 3; i++) {
        if (i == 0) fill_rect(&cv, lx, ly - 5, lx + sw, ly + 5, bar_fill, 0.85, ink, 0.6);
        if (i == 1) fill_rect(&cv, lx, ly - 5, lx + sw, ly + 5, gap_fill, 0.30, gap_fill, 0.8);
        if (i == 2) {
            cairo_move_to(cv.cr, lx, ly);
            cairo_line_to(cv.cr, lx + sw, ly);
            set_rgb(cv.cr, ink);
            set_dash(cv.cr, 1);
            cairo_set_line_width(cv.cr, 1.2);
            cairo_stroke(cv.cr);
            set_dash(cv.cr, 0);
        }
        draw_text(&cv, names[i], lx + sw + 5, ly, FS_LEGEND, 0, 0, VA_MIDDLE, 0, ink);
        lx += sw + 5 + text_w(&cv, names[i], FS_LEGEND, 0) + 16;
    }

    /* reliability panel */
    draw_ygrid(&cv, &rt, &ay);
    cairo_save(cv.cr);
    cairo_rectangle(cv.cr, rt.x, rt.y, rt.w, rt.h);
    cairo_clip(cv.cr);
    for (int b = 0; b < METRICS_NBINS; b++) {
        const metrics_bin *bn = &bins[b];
        if (bn->count == 0 || !isfinite(bn->accuracy)) continue;
        double x0 = map_x(&rt, &ax, b / 10.0), x1 = map_x(&rt, &ax, (b + 1) / 10.0);
        double ya = map_y(&rt, &ay, unit(bn->accuracy)), y0 = map_y(&rt, &ay, 0);
        fill_rect(&cv, x0, y0, x1, ya, bar_fill, 0.85, ink, 0.6);
        if (isfinite(bn->mean_conf)) {
            double yc = map_y(&rt, &ay, unit(bn->mean_conf));
            fill_rect(&cv, x0, ya, x1, yc, gap_fill, 0.30, gap_fill, 0.8);
        }
    }
    cairo_move_to(cv.cr, map_x(&rt, &ax, 0), map_y(&rt, &ay, 0));
    cairo_line_to(cv.cr, map_x(&rt, &ax, 1), map_y(&rt, &ay, 1));
    set_rgb(cv.cr, ink);
    set_dash(cv.cr, 1);
    cairo_set_line_width(cv.cr, 1.2);
    cairo_stroke(cv.cr);
    set_dash(cv.cr, 0);
    cairo_restore(cv.cr);
    if (n == 0)
        draw_text(&cv, "no samples", rt.x + rt.w * 0.3, rt.y + rt.h * 0.3, FS_LABEL, 0, 0.5,
                  VA_MIDDLE, 0, faint);
    xaxis xa;
    memset(&xa, 0, sizeof xa);
    xa.a = ax;
    xaxis_layout(&cv, &xa, pw);
    draw_xticks(&cv, &rt, &xa, 0, 0);
    draw_yaxis(&cv, &rt, &ay, yl, PAD);

    /* histogram panel */
    draw_ygrid(&cv, &rh, &ah);
    for (int b = 0; b < METRICS_NBINS; b++) {
        if (bins[b].count == 0) continue;
        double x0 = map_x(&rh, &ax, b / 10.0), x1 = map_x(&rh, &ax, (b + 1) / 10.0);
        fill_rect(&cv, x0, map_y(&rh, &ah, 0), x1, map_y(&rh, &ah, (double)bins[b].count),
                  hist_fill, 1.0, ink, 0.6);
    }
    draw_xticks(&cv, &rh, &xa, 1, 0);
    draw_yaxis(&cv, &rh, &ah, "count", PAD);
    if (has_text(xl)) {
        char buf[256];
        const char *s = fit_text(&cv, xl, pw, FS_LABEL, 0, buf, sizeof buf);
        draw_text(&cv, s, left + pw / 2, cv.h - PAD, FS_LABEL, 0, 0.5, VA_BOTTOM, 0, ink);
    }
    return canvas_close(&cv);
}

/* ---- heatmap --------------------------------------------------------------------------- */

#define CBAR_W 14.0

plot_status plot_heatmap(const plot_figure *fig, const plot_matrix *m) {
    if (!fig) return fail(PLOT_ERR_ARG, NULL, "no figure given (fig is NULL)");
    if (!m || !m->values || m->rows == 0 || m->cols == 0)
        return fail(PLOT_ERR_ARG, fig->path, "empty matrix (m or m.values NULL, or 0 rows/cols)");
    if (m->rows > 200 || m->cols > 200)
        return fail(PLOT_ERR_ARG, fig->path, "matrix %zu x %zu is too large (at most 200 x 200)",
                    m->rows, m->cols);
    canvas cv;
    plot_status st = canvas_open(&cv, fig, 720, 450);
    if (st) return st;
    size_t R = m->rows, C = m->cols;
    int dec = m->decimals > 0 ? (m->decimals > 6 ? 6 : m->decimals) : 3;

    /* colour range */
    double vmin = NAN, vmax = NAN;
    if (fixed_range(fig->ymin, fig->ymax)) {
        vmin = fig->ymin;
        vmax = fig->ymax;
    } else {
        for (size_t i = 0; i < R * C; i++)
            widen(&vmin, &vmax, m->values[i]);
        if (!isfinite(vmin)) vmin = 0, vmax = 1;
        if (!(vmax > vmin)) {
            double pad = fabs(vmin) > 0 ? fabs(vmin) * 0.05 : 0.5;
            vmin -= pad;
            vmax += pad;
        }
    }
    axis cb;
    axis_fixed(&cb, vmin, vmax, 5);

    /* labels */
    char buf[64], fit[256];
    double lab_h = text_h(&cv, FS_LABEL), tick_h = text_h(&cv, FS_TICK);
    double row_w = 0;
    for (size_t r = 0; r < R; r++) {
        const char *s = m->row_labels && m->row_labels[r] ? m->row_labels[r] : NULL;
        if (!s) snprintf(buf, sizeof buf, "%zu", r), s = buf;
        double w = text_w(&cv, s, FS_TICK, 0);
        if (w > row_w) row_w = w;
    }
    if (row_w > 0.25 * cv.w) row_w = 0.25 * cv.w;
    double cbar_tw = max_tick_w(&cv, &cb);
    double top = PAD + title_h(&cv, fig->title) + 6;
    double left = PAD + (has_text(fig->ylabel) ? lab_h + GAP : 0) + row_w + GAP;
    double right =
        PAD + (has_text(m->value_label) ? lab_h + GAP : 0) + cbar_tw + GAP + TICK_LEN + CBAR_W + 16;
    double gw = cv.w - left - right;
    xaxis xa; /* column labels as a categorical axis over [-0.5, C - 0.5] */
    memset(&xa, 0, sizeof xa);
    const char *colnames[200];
    char colbuf[200][24];
    for (size_t c = 0; c < C; c++) {
        if (m->col_labels && m->col_labels[c]) {
            colnames[c] = m->col_labels[c];
        } else {
            snprintf(colbuf[c], sizeof colbuf[c], "%zu", c + 1);
            colnames[c] = colbuf[c];
        }
    }
    xa.cats = colnames;
    xa.ncat = C;
    xa.a.lo = -0.5;
    xa.a.hi = (double)C - 0.5;
    for (size_t c = 0; c < C && c < MAX_TICKS; c++)
        xa.a.tick[xa.a.n++] = (double)c;
    if (C > MAX_TICKS) xa.a.n = 0; /* too many columns to label */
    xaxis_fit_margins(&cv, &xa, &left, &right, cv.w);
    gw = cv.w - left - right;
    double bottom =
        PAD + (has_text(fig->xlabel) ? lab_h + GAP : 0) + xaxis_label_h(&cv, &xa) + TICK_LEN + GAP;
    double gh = cv.h - top - bottom;
    if (gw < 60 || gh < 40) {
        canvas_abort(&cv);
        return fail(PLOT_ERR_ARG, fig->path,
                    "figure %g x %g points is too small for a %zu x %zu heatmap and its "
                    "labels; enlarge fig.width/height",
                    cv.w, cv.h, R, C);
    }
    rect g = {left, top, gw, gh};
    double cw = gw / (double)C, ch = gh / (double)R;

    /* cell value font: shrink until the widest value fits, or give up on values */
    double fs = FS_CELL;
    snprintf(buf, sizeof buf, "%.*f", dec, -fmax(fabs(vmin), fabs(vmax)));
    while (fs > 6.5 && (text_w(&cv, buf, fs, 0) > cw - 4 || text_h(&cv, fs) > ch - 2))
        fs -= 0.5;
    int show_values = text_w(&cv, buf, fs, 0) <= cw - 4 && text_h(&cv, fs) <= ch - 2;

    draw_title(&cv, fig->title);
    for (size_t r = 0; r < R; r++)
        for (size_t c = 0; c < C; c++) {
            double v = m->values[r * C + c];
            double x0 = g.x + (double)c * cw, y0 = g.y + (double)r * ch;
            rgb col, txt;
            if (isfinite(v)) {
                double t = (v - vmin) / (vmax - vmin);
                if (m->lower_is_better) t = 1 - t;
                col = viridis_at(t);
                double lum = 0.299 * col.r + 0.587 * col.g + 0.114 * col.b;
                txt = lum > 0.5 ? (rgb){0, 0, 0} : (rgb){1, 1, 1};
            } else {
                col = (rgb){0.93, 0.93, 0.93};
                txt = faint;
            }
            fill_rect(&cv, x0, y0, x0 + cw, y0 + ch, col, 1.0, (rgb){1, 1, 1}, 1.0);
            if (!show_values) continue;
            if (isfinite(v))
                snprintf(buf, sizeof buf, "%.*f", dec, v);
            else
                snprintf(buf, sizeof buf, "n/a");
            draw_text(&cv, buf, x0 + cw / 2, y0 + ch / 2, fs, 0, 0.5, VA_MIDDLE, 0, txt);
        }
    /* row labels */
    for (size_t r = 0; r < R; r++) {
        const char *s = m->row_labels && m->row_labels[r] ? m->row_labels[r] : NULL;
        if (!s) snprintf(buf, sizeof buf, "%zu", r), s = buf;
        if (ch < tick_h * 0.8 && R > 1) break; /* rows too thin to label */
        s = fit_text(&cv, s, row_w, FS_TICK, 0, fit, sizeof fit);
        draw_text(&cv, s, g.x - GAP, g.y + ((double)r + 0.5) * ch, FS_TICK, 0, 1, VA_MIDDLE, 0,
                  ink);
    }
    draw_xticks(&cv, &g, &xa, 1, 0);
    if (has_text(fig->ylabel)) {
        const char *s = fit_text(&cv, fig->ylabel, gh, FS_LABEL, 0, fit, sizeof fit);
        draw_text(&cv, s, PAD, g.y + gh / 2, FS_LABEL, 0, 0.5, VA_TOP, PLOT_PI / 2, ink);
    }
    if (has_text(fig->xlabel)) {
        const char *s = fit_text(&cv, fig->xlabel, gw, FS_LABEL, 0, fit, sizeof fit);
        draw_text(&cv, s, g.x + gw / 2, cv.h - PAD, FS_LABEL, 0, 0.5, VA_BOTTOM, 0, ink);
    }

    /* colour bar: low values at the bottom; reversed colours when lower is better */
    rect bar = {g.x + gw + 16, g.y, CBAR_W, gh};
    cairo_pattern_t *pat = cairo_pattern_create_linear(0, bar.y + bar.h, 0, bar.y);
    for (int i = 0; i <= 8; i++) {
        double t = i / 8.0;
        rgb c = viridis_at(m->lower_is_better ? 1 - t : t);
        cairo_pattern_add_color_stop_rgb(pat, t, c.r, c.g, c.b);
    }
    cairo_rectangle(cv.cr, bar.x, bar.y, bar.w, bar.h);
    cairo_set_source(cv.cr, pat);
    cairo_fill(cv.cr);
    cairo_pattern_destroy(pat);
    cairo_rectangle(cv.cr, bar.x, bar.y, bar.w, bar.h);
    set_rgb(cv.cr, ink);
    cairo_set_line_width(cv.cr, 0.8);
    cairo_stroke(cv.cr);
    for (int i = 0; i < cb.n; i++) {
        double y = map_y(&bar, &cb, cb.tick[i]);
        stroke_line(&cv, bar.x + bar.w, y, bar.x + bar.w + TICK_LEN, y, ink, 0.8);
        tick_label(&cb, cb.tick[i], buf, sizeof buf);
        draw_text(&cv, buf, bar.x + bar.w + TICK_LEN + GAP, y, FS_TICK, 0, 0, VA_MIDDLE, 0, ink);
    }
    if (has_text(m->value_label)) {
        const char *s = fit_text(&cv, m->value_label, gh, FS_LABEL, 0, fit, sizeof fit);
        draw_text(&cv, s, cv.w - PAD, g.y + gh / 2, FS_LABEL, 0, 0.5, VA_TOP, -PLOT_PI / 2, ink);
    }
    return canvas_close(&cv);
}
