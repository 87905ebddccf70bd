/*
 * src/sql/report.sql — the HTML usage report
 *
 * usage_report_html(tenant_id, period) returns one self-contained HTML
 * document (inline CSS and SVG, no script, no external fetch, a Content
 * Security Policy that forbids both) with charts of cost, tokens, success
 * rate, p95 latency, quota use, tracked against provider-reported cost, top
 * consumers and unpriced models.  An entry point and its body
 * (src/caller.c): the body reads as the owner and keeps explicitly to the
 * tenants the caller may see, so readers need no privilege on the tables.
 * Every chart is drawn twice, for
 * a wide and a narrow screen, and CSS shows the one that fits; every piece
 * of user data (tenant ids, model names, event types, role names) goes
 * through _html() before it reaches the document.
 */

CREATE OR REPLACE FUNCTION llm_usage._html(p_text text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
               p_text, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), '''', '&#39;')
$$;
COMMENT ON FUNCTION llm_usage._html(text) IS
'Internal: text escaped for HTML element content and quoted attribute values (& < > " and '').';

/*
 * _report_charw(ch): a generous upper bound of a character's width in em
 * for common sans-serif fonts: narrow punctuation 0.42, lower case 0.64,
 * capitals, digits and symbols 0.8, M W m w @ % 1.0, beyond ASCII 1.25.
 */
CREATE OR REPLACE FUNCTION llm_usage._report_charw(p_char text)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_char ~ '[ilIjtfr.,:;''|!()\[\]{} `]' THEN 0.42
                WHEN p_char ~ '[MWmw@%]' THEN 1.0
                WHEN p_char ~ '[a-z]' THEN 0.64
                WHEN ascii(p_char) < 128 THEN 0.8
                ELSE 1.25 END
$$;
COMMENT ON FUNCTION llm_usage._report_charw(text) IS 'Internal: an upper bound of a character''s width in em, for fitting report labels.';

/*
 * _report_fit(text, width, font): the text cut (with an ellipsis) so that
 * it fits in width px at font px, by _report_charw(); a fitted text never
 * overflows.  Escape afterwards.
 */
CREATE OR REPLACE FUNCTION llm_usage._report_fit(p_text text, p_width numeric, p_font numeric)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w   numeric := 0;
    cut integer := 0;
BEGIN
    FOR i IN 1 .. coalesce(length(p_text), 0) LOOP
        w := w + p_font * llm_usage._report_charw(substr(p_text, i, 1));
        -- the last position where the text and an ellipsis still fit
        IF w + p_font <= p_width THEN
            cut := i;
        END IF;
        IF w > p_width THEN
            RETURN left(p_text, cut) || '…';
        END IF;
    END LOOP;
    RETURN p_text;
END
$$;
COMMENT ON FUNCTION llm_usage._report_fit(text, numeric, numeric) IS
'Internal: text cut with an ellipsis to fit a width in px at a font size (by _report_charw); escape after fitting.';

/*
 * _report_num(value, kind): a figure as the report prints it: usd
 * ($1,234.56; four decimals under a cent), int (1,234,567), pct (97.5%),
 * ms (1,234 ms).  The exact value travels in data-value attributes.
 */
CREATE OR REPLACE FUNCTION llm_usage._report_num(p_value numeric, p_kind text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
               WHEN p_value IS NULL THEN '–'
               WHEN p_kind = 'usd' AND p_value <> 0 AND abs(p_value) < 0.01
                   THEN CASE WHEN p_value < 0 THEN '-' ELSE '' END || '$' || to_char(round(abs(p_value), 4), 'FM0.0000')
               WHEN p_kind = 'usd'
                   THEN CASE WHEN p_value < 0 THEN '-' ELSE '' END || '$' || to_char(round(abs(p_value), 2), 'FM999,999,999,999,990.00')
               WHEN p_kind = 'pct' THEN to_char(round(p_value, 1), 'FM990.0') || '%'
               WHEN p_kind = 'ms' THEN to_char(round(p_value), 'FM999,999,999,990') || ' ms'
               ELSE to_char(round(p_value), 'FM999,999,999,999,999,990')
           END
$$;
COMMENT ON FUNCTION llm_usage._report_num(numeric, text) IS
'Internal: a figure formatted for the report (usd, int, pct, ms).';

/* _report_step(raw): the "nice" axis step (1, 2, 2.5 or 5 times a power of ten) at or above raw. */
CREATE OR REPLACE FUNCTION llm_usage._report_step(p_raw numeric)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT trim_scale(CASE WHEN n.norm <= 1 THEN 1 WHEN n.norm <= 2 THEN 2 WHEN n.norm <= 2.5 THEN 2.5
                           WHEN n.norm <= 5 THEN 5 ELSE 10 END * n.mag)
      FROM (SELECT p_raw / m.mag AS norm, m.mag
              FROM (SELECT power(10::numeric, floor(log(p_raw))) AS mag) m) n
$$;
COMMENT ON FUNCTION llm_usage._report_step(numeric) IS 'Internal: a round axis step at or above the given one.';

/* _report_tick(value, kind, step): an axis label, short (k, M) where the step allows. */
CREATE OR REPLACE FUNCTION llm_usage._report_tick(p_value numeric, p_kind text, p_step numeric)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
               WHEN p_kind = 'pct' THEN to_char(p_value, 'FM990') || '%'
               WHEN p_kind = 'ms' THEN to_char(p_value, 'FM999,999,999,990') || ' ms'
               WHEN p_value = 0 THEN CASE WHEN p_kind = 'usd' THEN '$0' ELSE '0' END
               WHEN p_step >= 100000 THEN CASE WHEN p_kind = 'usd' THEN '$' ELSE '' END
                   || rtrim(rtrim(to_char(p_value / 1000000, 'FM999,999,990.00'), '0'), '.') || 'M'
               WHEN p_step >= 100 THEN CASE WHEN p_kind = 'usd' THEN '$' ELSE '' END
                   || rtrim(rtrim(to_char(p_value / 1000, 'FM999,999,990.00'), '0'), '.') || 'k'
               WHEN p_kind = 'usd' AND p_step < 0.01 THEN '$' || to_char(p_value, 'FM0.0000')
               WHEN p_kind = 'usd' AND p_step < 1 THEN '$' || to_char(p_value, 'FM999,990.00')
               WHEN p_kind = 'usd' THEN '$' || to_char(p_value, 'FM999,999,990')
               ELSE to_char(p_value, 'FM999,999,999,990')
           END
$$;
COMMENT ON FUNCTION llm_usage._report_tick(numeric, text, numeric) IS 'Internal: an axis tick label of the report.';

/*
 * _report_columns(...): one SVG chart over buckets (days or weeks).
 * p_values is [series][bucket]; p_kind is "stacked" (columns stacked by
 * series), "grouped" (side by side) or "line" (a line per series, gaps
 * where a value is NULL).  Every mark carries data-chart, data-x,
 * data-series and data-value (exact) and a <title>; axis labels are thinned
 * so that they never overlap, and the margins leave room for the widest.
 * Sizes are in viewBox units, which CSS scales to the card's width.
 */
CREATE OR REPLACE FUNCTION llm_usage._report_columns(p_chart text, p_kind text, p_keys text[], p_labels text[],
                                                     p_series text[], p_colors text[], p_values numeric[],
                                                     p_fmt text, p_width integer, p_height integer,
                                                     p_max numeric, p_aria text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n      integer := coalesce(array_length(p_keys, 1), 0);
    ns     integer := coalesce(array_length(p_series, 1), 0);
    vmax   numeric := 0;
    tot    numeric;
    v      numeric;
    step   numeric;
    top    numeric;
    nt     integer;
    ml     numeric;
    mr     numeric;
    mt     numeric := 10;
    mb     numeric := 26;
    pw     numeric;
    ph     numeric;
    bw     numeric;
    lw     numeric := 0;
    every  integer;
    maxlen integer := 0;
    ticks  text[] := '{}';
    o      text;
    acc    numeric;
    x      numeric;
    y      numeric;
    h      numeric;
    w      numeric;
    seg    text;
    r      numeric;
    lab    text;
BEGIN
    FOR i IN 1 .. n LOOP
        tot := 0;
        FOR s IN 1 .. ns LOOP
            v := p_values[s][i];
            IF v IS NOT NULL THEN
                tot := CASE WHEN p_kind = 'stacked' THEN tot + greatest(v, 0) ELSE greatest(tot, v) END;
            END IF;
        END LOOP;
        vmax := greatest(vmax, tot);
    END LOOP;
    vmax := coalesce(p_max, vmax);
    IF vmax <= 0 THEN
        vmax := CASE WHEN p_fmt = 'usd' THEN 0.01 ELSE 4 END;
    END IF;
    step := llm_usage._report_step(vmax / 4);
    IF p_fmt IN ('int', 'ms', 'pct') THEN
        step := greatest(step, 1);
    END IF;
    top := ceil(vmax / step) * step;
    nt := round(top / step);
    FOR k IN 0 .. nt LOOP
        ticks := ticks || llm_usage._report_tick(k * step, p_fmt, step);
        maxlen := greatest(maxlen, length(ticks[k + 1]));
    END LOOP;
    FOR i IN 1 .. n LOOP
        lw := greatest(lw, length(p_labels[i]) * 6.4 + 8);
    END LOOP;
    ml := greatest(ceil(maxlen * 6.4) + 12, ceil(lw / 2) + 2);
    mr := greatest(8, ceil(lw / 2) + 2);
    pw := p_width - ml - mr;
    ph := p_height - mt - mb;
    bw := pw / greatest(n, 1);
    every := greatest(1, ceil(lw / bw)::integer);

    o := format('<svg class="chart-svg" data-chart="%s" viewBox="0 0 %s %s" role="img" aria-label="%s">',
                llm_usage._html(p_chart), p_width, p_height, llm_usage._html(p_aria));
    -- grid and y axis
    FOR k IN 0 .. nt LOOP
        y := round(mt + ph - k * step / top * ph, 1);
        o := o || format('<line class="grid" x1="%s" x2="%s" y1="%s" y2="%s"/>', ml, ml + pw, y, y)
               || format('<text class="tick" x="%s" y="%s" text-anchor="end">%s</text>',
                         ml - 6, y + 4, llm_usage._html(ticks[k + 1]));
    END LOOP;
    IF n = 0 THEN
        o := o || format('<text class="empty" x="%s" y="%s" text-anchor="middle">no data in this period</text>',
                         ml + pw / 2, mt + ph / 2);
    END IF;
    -- marks
    FOR i IN 1 .. n LOOP
        IF p_kind = 'stacked' THEN
            acc := 0;
            FOR s IN 1 .. ns LOOP
                v := p_values[s][i];
                CONTINUE WHEN v IS NULL OR v <= 0;
                h := v / top * ph;
                o := o || format('<rect class="mark" data-chart="%s" data-x="%s" data-series="%s" data-value="%s" '
                                 'x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s · %s: %s</title></rect>',
                                 llm_usage._html(p_chart), llm_usage._html(p_keys[i]), llm_usage._html(p_series[s]), v,
                                 round(ml + (i - 1) * bw + bw * 0.15, 2), round(mt + ph - acc - h, 2),
                                 round(bw * 0.7, 2), round(h, 2), p_colors[s],
                                 llm_usage._html(p_labels[i]), llm_usage._html(p_series[s]),
                                 llm_usage._html(llm_usage._report_num(v, p_fmt)));
                acc := acc + h;
            END LOOP;
        ELSIF p_kind = 'grouped' THEN
            w := bw * 0.8 / greatest(ns, 1);
            FOR s IN 1 .. ns LOOP
                v := p_values[s][i];
                CONTINUE WHEN v IS NULL OR v <= 0;
                h := v / top * ph;
                o := o || format('<rect class="mark" data-chart="%s" data-x="%s" data-series="%s" data-value="%s" '
                                 'x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s · %s: %s</title></rect>',
                                 llm_usage._html(p_chart), llm_usage._html(p_keys[i]), llm_usage._html(p_series[s]), v,
                                 round(ml + (i - 1) * bw + bw * 0.1 + (s - 1) * w, 2), round(mt + ph - h, 2),
                                 round(w, 2), round(h, 2), p_colors[s],
                                 llm_usage._html(p_labels[i]), llm_usage._html(p_series[s]),
                                 llm_usage._html(llm_usage._report_num(v, p_fmt)));
            END LOOP;
        END IF;
    END LOOP;
    IF p_kind = 'line' THEN
        r := round(least(3, greatest(1.2, bw / 3)), 1);
        FOR s IN 1 .. ns LOOP
            seg := '';
            FOR i IN 1 .. n + 1 LOOP
                v := CASE WHEN i <= n THEN p_values[s][i] END;
                IF v IS NULL THEN
                    IF position(' ' IN seg) > 0 THEN
                        o := o || format('<polyline class="line" fill="none" stroke="%s" points="%s"/>', p_colors[s], btrim(seg));
                    END IF;
                    seg := '';
                    CONTINUE;
                END IF;
                x := round(ml + (i - 0.5) * bw, 2);
                y := round(mt + ph - least(greatest(v, 0), top) / top * ph, 2);
                seg := seg || ' ' || x || ',' || y;
            END LOOP;
            FOR i IN 1 .. n LOOP
                v := p_values[s][i];
                CONTINUE WHEN v IS NULL;
                o := o || format('<circle class="mark" data-chart="%s" data-x="%s" data-series="%s" data-value="%s" '
                                 'cx="%s" cy="%s" r="%s" fill="%s"><title>%s · %s: %s</title></circle>',
                                 llm_usage._html(p_chart), llm_usage._html(p_keys[i]), llm_usage._html(p_series[s]), v,
                                 round(ml + (i - 0.5) * bw, 2),
                                 round(mt + ph - least(greatest(v, 0), top) / top * ph, 2), r, p_colors[s],
                                 llm_usage._html(p_labels[i]), llm_usage._html(p_series[s]),
                                 llm_usage._html(llm_usage._report_num(v, p_fmt)));
            END LOOP;
        END LOOP;
    END IF;
    -- x axis and its labels (the last bucket always labelled)
    o := o || format('<line class="axis" x1="%s" x2="%s" y1="%s" y2="%s"/>', ml, ml + pw, mt + ph, mt + ph);
    FOR i IN 1 .. n LOOP
        CONTINUE WHEN (n - i) % every <> 0;
        lab := p_labels[i];
        o := o || format('<text class="xlabel" x="%s" y="%s" text-anchor="middle">%s</text>',
                         round(ml + (i - 0.5) * bw, 2), p_height - 8, llm_usage._html(lab));
    END LOOP;
    RETURN o || '</svg>';
END
$$;
COMMENT ON FUNCTION llm_usage._report_columns(text, text, text[], text[], text[], text[], numeric[], text, integer, integer, numeric, text) IS
'Internal: an SVG column (stacked or grouped) or line chart over days or weeks, with axes, for usage_report_html().';

/*
 * _report_hbars(...): one SVG of horizontal bars, a row per item: its
 * label (clipped to the width), a bar filled to value / limit, and a text
 * line under it.  Marks carry data-chart, data-key, data-value and
 * data-limit.
 */
CREATE OR REPLACE FUNCTION llm_usage._report_hbars(p_chart text, p_keys text[], p_labels text[], p_values numeric[],
                                                   p_limits numeric[], p_texts text[], p_colors text[],
                                                   p_width integer, p_aria text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n   integer := coalesce(array_length(p_keys, 1), 0);
    rh  integer := 50;
    o   text;
    y   integer;
    f   numeric;
    lab text;
    suf text;
BEGIN
    o := format('<svg class="chart-svg" data-chart="%s" viewBox="0 0 %s %s" role="img" aria-label="%s">',
                llm_usage._html(p_chart), p_width, greatest(n, 1) * rh + 4, llm_usage._html(p_aria));
    IF n = 0 THEN
        o := o || format('<text class="empty" x="%s" y="28" text-anchor="middle">nothing to show</text>', p_width / 2);
    END IF;
    FOR i IN 1 .. n LOOP
        y := (i - 1) * rh;
        -- "<tenant> · <what>": the tenant id gives way, so that <what> stays
        IF strpos(p_labels[i], ' · ') > 0 THEN
            suf := substring(p_labels[i] FROM '( · [^·]*)$');
            lab := llm_usage._report_fit(left(p_labels[i], length(p_labels[i]) - length(suf)),
                                         p_width - (SELECT 12 * sum(llm_usage._report_charw(c))
                                                      FROM regexp_split_to_table(suf, '') c), 12) || suf;
        ELSE
            lab := llm_usage._report_fit(p_labels[i], p_width, 12);
        END IF;
        f := CASE WHEN p_limits[i] > 0 THEN least(greatest(p_values[i], 0) / p_limits[i], 1)
                  WHEN p_values[i] > 0 THEN 1 ELSE 0 END;
        o := o || format('<text class="hlabel" x="0" y="%s">%s<title>%s</title></text>', y + 14,
                         llm_usage._html(lab), llm_usage._html(p_labels[i]))
               || format('<rect class="track" x="0" y="%s" width="%s" height="10" rx="2"/>', y + 20, p_width)
               || format('<rect class="mark" data-chart="%s" data-key="%s" data-value="%s" data-limit="%s" '
                         'x="0" y="%s" width="%s" height="10" rx="2" fill="%s"><title>%s</title></rect>',
                         llm_usage._html(p_chart), llm_usage._html(p_keys[i]), p_values[i],
                         coalesce(p_limits[i]::text, ''), y + 20, round(p_width * f, 2), p_colors[i],
                         llm_usage._html(p_labels[i] || ': ' || p_texts[i]))
               || format('<text class="hval" x="0" y="%s">%s</text>', y + 44, llm_usage._html(p_texts[i]));
    END LOOP;
    RETURN o || '</svg>';
END
$$;
COMMENT ON FUNCTION llm_usage._report_hbars(text, text[], text[], numeric[], numeric[], text[], text[], integer, text) IS
'Internal: an SVG of labelled horizontal bars (value against a limit or the largest value) for usage_report_html().';

/* _report_legend(series, colors): the HTML legend of a chart. */
CREATE OR REPLACE FUNCTION llm_usage._report_legend(p_series text[], p_colors text[])
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT '<ul class="legend">'
           || coalesce(string_agg(format('<li><svg class="sw" viewBox="0 0 12 12" aria-hidden="true"><rect width="12" height="12" rx="2" fill="%s"/></svg><span>%s</span></li>',
                                         p_colors[s.i], llm_usage._html(s.name)), '' ORDER BY s.i), '')
           || '</ul>'
      FROM unnest(p_series) WITH ORDINALITY s(name, i)
$$;
COMMENT ON FUNCTION llm_usage._report_legend(text[], text[]) IS 'Internal: the HTML legend (colour swatch and name per series) of a report chart.';

/*
 * _report_chart_pair(...): a column chart drawn for each screen width it
 * may be shown at: 340 units for phones, 560 for a half-width card (or a
 * full-width card on a mid-sized screen), 1140 for a full-width card on a
 * wide screen; CSS shows the one that fits.
 */
CREATE OR REPLACE FUNCTION llm_usage._report_chart_pair(p_chart text, p_kind text, p_keys text[], p_labels text[],
                                                        p_series text[], p_colors text[], p_values numeric[],
                                                        p_fmt text, p_max numeric, p_aria text, p_full boolean)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_full THEN
                    '<div class="chart c-xwide">'
                    || llm_usage._report_columns(p_chart, p_kind, p_keys, p_labels, p_series, p_colors, p_values,
                                                 p_fmt, 1140, 300, p_max, p_aria)
                    || '</div><div class="chart c-mid">'
                ELSE '<div class="chart c-wide">' END
           || llm_usage._report_columns(p_chart, p_kind, p_keys, p_labels, p_series, p_colors, p_values, p_fmt,
                                        560, 250, p_max, p_aria)
           || '</div><div class="chart c-narrow">'
           || llm_usage._report_columns(p_chart, p_kind, p_keys, p_labels, p_series, p_colors, p_values, p_fmt,
                                        340, 220, p_max, p_aria)
           || '</div>'
$$;
COMMENT ON FUNCTION llm_usage._report_chart_pair(text, text, text[], text[], text[], text[], numeric[], text, numeric, text, boolean) IS
'Internal: a report chart drawn for a phone (340 units), a half-width card (560) and, for a full-width card, a wide screen (1140); CSS shows one.';

/* _report_hbars_pair(...): horizontal bars for a wide and for a narrow screen. */
CREATE OR REPLACE FUNCTION llm_usage._report_hbars_pair(p_chart text, p_keys text[], p_labels text[], p_values numeric[],
                                                        p_limits numeric[], p_texts text[], p_colors text[], p_aria text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT '<div class="chart c-wide">'
           || llm_usage._report_hbars(p_chart, p_keys, p_labels, p_values, p_limits, p_texts, p_colors, 540, p_aria)
           || '</div><div class="chart c-narrow">'
           || llm_usage._report_hbars(p_chart, p_keys, p_labels, p_values, p_limits, p_texts, p_colors, 330, p_aria)
           || '</div>'
$$;
COMMENT ON FUNCTION llm_usage._report_hbars_pair(text, text[], text[], numeric[], numeric[], text[], text[], text) IS
'Internal: report horizontal bars drawn for a half-width card (540 units) and a phone (330); CSS shows one.';

CREATE OR REPLACE FUNCTION llm_usage._report_css()
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $css$
    SELECT $$
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:#f3f4f6;color:#1f2937;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans",Arial,sans-serif}
header,main,footer{max-width:1240px;margin:0 auto;padding:0 24px}
header{padding-top:20px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:16px;margin:0 0 2px}
.meta{color:#4b5563;margin:0;overflow-wrap:anywhere}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:12px;margin:16px 0}
.kpi{background:#fff;border-radius:8px;padding:10px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08);min-width:0}
.kpi .l{display:block;color:#6b7280;font-size:12px}
.kpi .v{display:block;font-size:20px;font-weight:600;overflow-wrap:anywhere}
.grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:16px}
.card{background:#fff;border-radius:8px;padding:14px 16px;box-shadow:0 1px 2px rgba(0,0,0,.08);min-width:0}
.card.full{grid-column:1/-1}
.sub{color:#6b7280;font-size:12px;margin:0 0 8px;overflow-wrap:anywhere}
.chart svg{display:block;width:100%;height:auto}
.c-narrow,.c-mid{display:none}
h3{font-size:13px;margin:10px 0 0;color:#374151}
.legend{list-style:none;display:flex;flex-wrap:wrap;gap:4px 14px;margin:8px 0 0;padding:0;font-size:12px}
.legend li{display:flex;align-items:center;gap:6px;min-width:0;max-width:100%}
.legend span{overflow-wrap:anywhere;min-width:0}
.sw{width:12px;height:12px;flex:none}
.note{font-size:12px;color:#4b5563;margin:8px 0 0;overflow-wrap:anywhere}
table{width:100%;border-collapse:collapse;font-size:13px}
th,td{text-align:left;padding:5px 6px;border-bottom:1px solid #e5e7eb;vertical-align:top;overflow-wrap:anywhere}
th{color:#6b7280;font-weight:600;font-size:12px}
.n{text-align:right;white-space:nowrap}
.chart-svg text{font-family:inherit}
.tick,.xlabel{font-size:11px;fill:#6b7280}
.hlabel{font-size:12px;fill:#1f2937}
.hval{font-size:11px;fill:#4b5563}
.empty{font-size:12px;fill:#9ca3af}
.grid line,.chart-svg .grid{stroke:#e5e7eb;stroke-width:1}
.chart-svg .axis{stroke:#9ca3af;stroke-width:1}
.chart-svg .track{fill:#eef0f3}
.chart-svg .line{stroke-width:2}
footer{color:#6b7280;font-size:12px;padding-top:16px;padding-bottom:24px;overflow-wrap:anywhere}
@media (max-width:999px){.grid{grid-template-columns:minmax(0,1fr)}.c-xwide{display:none}.c-mid{display:block}}
@media (max-width:599px){
  header,main,footer{padding-left:12px;padding-right:12px}
  .card{padding:12px}
  .c-wide,.c-xwide,.c-mid{display:none}
  .c-narrow{display:block}
  .kpis{grid-template-columns:repeat(2,minmax(0,1fr));gap:8px}
  .kpi .v{font-size:17px}
  h1{font-size:19px}
}
$$
$css$;
COMMENT ON FUNCTION llm_usage._report_css() IS 'Internal: the style sheet of the HTML report (responsive: two columns, one column, phone).';

CREATE OR REPLACE FUNCTION llm_usage.usage_report_html(tenant_id text DEFAULT NULL, period text DEFAULT '30d')
RETURNS text
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.usage_report_html(text, text) IS
'One self-contained HTML document (inline CSS and SVG, no script, no external fetch) with charts of a tenant''s, or every visible tenant''s (tenant_id NULL), last 7, 30 or 90 days (daily) or 1y (weekly): cost by model, tokens, success rate and p95 latency, quota use against limits, tracked vs provider-reported cost, top consumers and unpriced models.  Only the tenants the caller may see.  psql -Atc "select llm_usage.usage_report_html()" > report.html';

/*
 * The body reads as the owner: every query below keeps to v_tenants, the
 * tenants the caller may see (llm_usage._can_access), explicitly.
 */
CREATE OR REPLACE FUNCTION llm_usage._usage_report_html_impl(tenant_id text DEFAULT NULL, period text DEFAULT '30d')
RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    palette   text[] := ARRAY['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1',
                              '#9c755f', '#bab0ac'];
    v_days    integer;
    v_bucket  text;
    v_single  boolean := $1 IS NOT NULL;
    v_tenants text[];
    v_zone    text := 'UTC';
    v_today   date;
    v_from    date;
    v_start   timestamptz;
    v_end     timestamptz;
    v_rstart  timestamptz;
    v_rend    timestamptz;
    v_keys    date[];
    k_text    text[];
    k_label   text[];
    v_top     text[];
    v_series  text[];
    v_vals    numeric[];
    v_vals2   numeric[];
    v_colors  text[];
    v_what    text;
    v_unit    text;
    k         record;
    h         text;
    q_keys    text[] := '{}';
    q_labels  text[] := '{}';
    q_vals    numeric[] := '{}';
    q_lims    numeric[] := '{}';
    q_texts   text[] := '{}';
    q_cols    text[] := '{}';
    q_unlim   integer := 0;
    q_more    integer := 0;
    c_keys    text[];
    c_vals    numeric[];
    c_max     numeric[];
    c_texts   text[];
    c_cols    text[];
    r_tracked numeric;
    r_report  numeric;
    t         llm_usage.tenants;
    u         text;
BEGIN
    -- arguments
    IF $2 IS NULL THEN
        RAISE EXCEPTION 'period must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Periods are: 7d, 30d, 90d, 1y.';
    END IF;
    CASE $2
        WHEN '7d' THEN v_days := 7; v_bucket := 'day';
        WHEN '30d' THEN v_days := 30; v_bucket := 'day';
        WHEN '90d' THEN v_days := 90; v_bucket := 'day';
        WHEN '1y' THEN v_days := 365; v_bucket := 'week';
        ELSE
            RAISE EXCEPTION 'unknown period "%"', $2
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Periods are: 7d, 30d, 90d, 1y.';
    END CASE;
    IF v_single THEN
        IF $1 = '' THEN
            RAISE EXCEPTION 'tenant_id must not be empty'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Pass NULL for every tenant you may see.';
        END IF;
        IF NOT llm_usage._can_access($1) THEN
            RAISE EXCEPTION 'permission denied for tenant "%"', $1
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'An llm_usage admin can grant access with llm_usage.grant_tenant_access().';
        END IF;
        SELECT * INTO t FROM llm_usage.tenants x WHERE x.tenant_id = $1 COLLATE pg_catalog."default";
        IF NOT FOUND OR t.tenant_id COLLATE pg_catalog."C" <> $1 COLLATE pg_catalog."C" THEN
            RAISE EXCEPTION 'tenant "%" does not exist', $1
                USING ERRCODE = 'undefined_object',
                      HINT = 'Create it with llm_usage.create_tenant().';
        END IF;
        v_tenants := ARRAY[t.tenant_id];
        v_zone := t.timezone;
    ELSE
        -- every tenant the caller may see
        SELECT coalesce(array_agg(x.tenant_id ORDER BY x.tenant_id), '{}') INTO v_tenants
          FROM llm_usage.tenants x WHERE llm_usage._can_access(x.tenant_id);
    END IF;

    v_today := (now() AT TIME ZONE v_zone)::date;
    v_from := v_today - (v_days - 1);
    v_start := v_from::timestamp AT TIME ZONE v_zone;
    v_end := (v_today + 1)::timestamp AT TIME ZONE v_zone;
    -- provider-reported costs come in UTC days: the same dates, in UTC
    v_rstart := v_from::timestamp AT TIME ZONE 'UTC';
    v_rend := (v_today + 1)::timestamp AT TIME ZONE 'UTC';
    SELECT array_agg(d::date ORDER BY d) INTO v_keys
      FROM generate_series(date_trunc(v_bucket, v_from::timestamp), v_today::timestamp,
                           ('1 ' || v_bucket)::interval) d;
    SELECT array_agg(d::text ORDER BY i), array_agg(to_char(d, 'Mon FMDD') ORDER BY i) INTO k_text, k_label
      FROM unnest(v_keys) WITH ORDINALITY x(d, i);
    v_unit := CASE v_bucket WHEN 'day' THEN 'day' ELSE 'week' END;

    h := '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
         '<meta name="viewport" content="width=device-width, initial-scale=1">'
         '<meta http-equiv="Content-Security-Policy" content="default-src ''none''; style-src ''unsafe-inline''">'
         || format('<title>LLM usage report: %s, last %s</title>',
                   llm_usage._html(CASE WHEN v_single THEN t.tenant_id ELSE 'all tenants' END),
                   CASE $2 WHEN '1y' THEN '12 months' ELSE v_days || ' days' END)
         || '<style>' || llm_usage._report_css() || '</style></head><body>'
         || '<header><h1>LLM usage report</h1>'
         || format('<p class="meta" id="scope" data-tenants="%s">%s · last %s, %s to %s (%s) · by %s</p>',
                   coalesce(array_length(v_tenants, 1), 0),
                   CASE WHEN v_single THEN 'Tenant <strong>' || llm_usage._html(t.tenant_id) || '</strong>'
                        ELSE format('All tenants you may see (%s)', coalesce(array_length(v_tenants, 1), 0)) END,
                   CASE $2 WHEN '1y' THEN '12 months' ELSE v_days || ' days' END,
                   v_from, v_today, llm_usage._html(v_zone),
                   llm_usage._html(llm_usage._caller()::regrole::text))
         || '</header><main>';

    -- key figures
    SELECT h || '<section class="kpis" id="kpis">'
           || format('<div class="kpi" data-kpi="cost" data-value="%s"><span class="l">Tracked cost</span><span class="v">%s</span></div>',
                     coalesce(sum(e.cost_usd), 0), llm_usage._report_num(coalesce(sum(e.cost_usd), 0), 'usd'))
           || format('<div class="kpi" data-kpi="calls" data-value="%s"><span class="l">Calls</span><span class="v">%s</span></div>',
                     count(*), llm_usage._report_num(count(*), 'int'))
           || format('<div class="kpi" data-kpi="tokens" data-value="%s"><span class="l">Tokens</span><span class="v">%s</span></div>',
                     coalesce(sum(e.total_tokens), 0), llm_usage._report_num(coalesce(sum(e.total_tokens), 0), 'int'))
           || format('<div class="kpi" data-kpi="success_rate" data-value="%s"><span class="l">Success rate</span><span class="v">%s</span></div>',
                     coalesce(round(100.0 * count(*) FILTER (WHERE e.result = 'success') / nullif(count(*), 0), 2)::text, ''),
                     llm_usage._report_num(round(100.0 * count(*) FILTER (WHERE e.result = 'success') / nullif(count(*), 0), 2), 'pct'))
           || format('<div class="kpi" data-kpi="p95_latency" data-value="%s"><span class="l">p95 latency</span><span class="v">%s</span></div>',
                     coalesce(round((percentile_cont(0.95) WITHIN GROUP (ORDER BY e.latency_ms))::numeric, 1)::text, ''),
                     llm_usage._report_num(round((percentile_cont(0.95) WITHIN GROUP (ORDER BY e.latency_ms))::numeric, 1), 'ms'))
           || format('<div class="kpi" data-kpi="unpriced_calls" data-value="%s"><span class="l">Calls without a price</span><span class="v">%s</span></div>',
                     count(*) FILTER (WHERE e.cost_usd IS NULL), llm_usage._report_num(count(*) FILTER (WHERE e.cost_usd IS NULL), 'int'))
      INTO h
      FROM llm_usage.usage_events e
     WHERE e.tenant_id = ANY (v_tenants) AND e.occurred_at >= v_start AND e.occurred_at < v_end;
    SELECT coalesce(sum(c.amount_usd), 0) INTO r_report
      FROM llm_usage.provider_costs c
     WHERE c.tenant_id = ANY (v_tenants) AND c.bucket_start >= v_rstart AND c.bucket_start < v_rend;
    h := h || format('<div class="kpi" data-kpi="reported_cost" data-value="%s"><span class="l">Provider-reported cost</span><span class="v">%s</span></div>',
                     r_report, llm_usage._report_num(r_report, 'usd'))
           || '</section><div class="grid">';

    -- 1. cost per bucket, stacked by model (the 7 costliest models, the rest together)
    SELECT coalesce(array_agg(m.model ORDER BY m.cost DESC, m.model), '{}') INTO v_top
      FROM (SELECT coalesce(e.model, '(no model)') AS model, coalesce(sum(e.cost_usd), 0) AS cost
              FROM llm_usage.usage_events e
             WHERE e.tenant_id = ANY (v_tenants) AND e.occurred_at >= v_start AND e.occurred_at < v_end
             GROUP BY 1
            HAVING sum(e.cost_usd) > 0) m;
    IF coalesce(array_length(v_top, 1), 0) > 8 THEN
        v_series := v_top[1:7] || 'other models'::text;
    ELSE
        v_series := v_top;
    END IF;
    v_colors := palette[1:coalesce(array_length(v_series, 1), 0)];
    WITH a AS (
        SELECT date_trunc(v_bucket, e.occurred_at AT TIME ZONE v_zone)::date AS b,
               CASE WHEN coalesce(e.model, '(no model)') = ANY (v_series) THEN coalesce(e.model, '(no model)')
                    ELSE 'other models' END AS s,
               sum(e.cost_usd) AS v
          FROM llm_usage.usage_events e
         WHERE e.tenant_id = ANY (v_tenants) AND e.occurred_at >= v_start AND e.occurred_at < v_end
         GROUP BY 1, 2)
    SELECT array_agg(x.r ORDER BY x.si) INTO v_vals
      FROM (SELECT s.si, array_agg(coalesce(a.v, 0) ORDER BY kk.ki) AS r
              FROM unnest(v_series) WITH ORDINALITY s(name, si)
             CROSS JOIN unnest(v_keys) WITH ORDINALITY kk(key, ki)
              LEFT JOIN a ON a.b = kk.key AND a.s = s.name
             GROUP BY s.si) x;
    h := h || '<section class="card full" id="cost-by-model"><h2>Cost per ' || v_unit || ' by model</h2>'
           || '<p class="sub">USD, tracked with track_usage() at published prices; calls without a price count 0 here (see below)</p>'
           || llm_usage._report_chart_pair('cost', 'stacked', k_text, k_label, v_series, v_colors, v_vals, 'usd', NULL,
                                           'Cost in USD per ' || v_unit || ', stacked by model', true)
           || llm_usage._report_legend(v_series, v_colors) || '</section>';

    -- 2. tokens per bucket, input and output
    WITH a AS (
        SELECT date_trunc(v_bucket, e.occurred_at AT TIME ZONE v_zone)::date AS b,
               sum(e.input_tokens) AS i, sum(e.output_tokens) AS o
          FROM llm_usage.usage_events e
         WHERE e.tenant_id = ANY (v_tenants) AND e.occurred_at >= v_start AND e.occurred_at < v_end
         GROUP BY 1)
    SELECT ARRAY[array_agg(coalesce(a.i, 0) ORDER BY kk.ki), array_agg(coalesce(a.o, 0) ORDER BY kk.ki)] INTO v_vals
      FROM unnest(v_keys) WITH ORDINALITY kk(key, ki) LEFT JOIN a ON a.b = kk.key;
    h := h || '<section class="card" id="tokens"><h2>Tokens per ' || v_unit || '</h2>'
           || '<p class="sub">Input (cached and cache writes included) and output tokens of tracked calls</p>'
           || llm_usage._report_chart_pair('tokens', 'stacked', k_text, k_label, ARRAY['input tokens', 'output tokens'],
                                           ARRAY['#4e79a7', '#f28e2b'], v_vals, 'int', NULL,
                                           'Tokens per ' || v_unit || ', input and output stacked', false)
           || llm_usage._report_legend(ARRAY['input tokens', 'output tokens'], ARRAY['#4e79a7', '#f28e2b']) || '</section>';

    -- 3. success rate and p95 latency per bucket
    WITH a AS (
        SELECT date_trunc(v_bucket, e.occurred_at AT TIME ZONE v_zone)::date AS b,
               round(100.0 * count(*) FILTER (WHERE e.result = 'success') / count(*), 2) AS sr,
               round((percentile_cont(0.95) WITHIN GROUP (ORDER BY e.latency_ms))::numeric, 1) AS p95
          FROM llm_usage.usage_events e
         WHERE e.tenant_id = ANY (v_tenants) AND e.occurred_at >= v_start AND e.occurred_at < v_end
         GROUP BY 1)
    SELECT ARRAY[array_agg(a.sr ORDER BY kk.ki)], ARRAY[array_agg(a.p95 ORDER BY kk.ki)] INTO v_vals, v_vals2
      FROM unnest(v_keys) WITH ORDINALITY kk(key, ki) LEFT JOIN a ON a.b = kk.key;
    h := h || '<section class="card" id="quality"><h2>Success rate and p95 latency per ' || v_unit || '</h2>'
           || '<p class="sub">Share of tracked calls with result "success"; 95th percentile of latency_ms (no point: no calls, or no latency reported)</p>'
           || '<h3>Success rate (%)</h3>'
           || llm_usage._report_chart_pair('success_rate', 'line', k_text, k_label, ARRAY['success rate'],
                                           ARRAY['#59a14f'], v_vals, 'pct', 100, 'Success rate in percent per ' || v_unit, false)
           || '<h3>p95 latency (ms)</h3>'
           || llm_usage._report_chart_pair('p95_latency', 'line', k_text, k_label, ARRAY['p95 latency'],
                                           ARRAY['#e15759'], v_vals2, 'ms', NULL, 'p95 latency in milliseconds per ' || v_unit, false)
           || llm_usage._report_legend(ARRAY['success rate (%)', 'p95 latency (ms)'], ARRAY['#59a14f', '#e15759'])
           || '</section>';

    -- 4. quota use now, against the limits (the fullest first; for many tenants the 50 costliest)
    FOR k IN
        SELECT s.tenant_id, s.quota_type, s.period, s.quota_limit, s.used, s.percentage
          FROM (SELECT x.tenant_id
                  FROM unnest(v_tenants) x(tenant_id)
                  LEFT JOIN LATERAL (SELECT sum(e.cost_usd) AS cost, count(*) AS calls
                                       FROM llm_usage.usage_events e
                                      WHERE e.tenant_id = x.tenant_id AND e.occurred_at >= v_start
                                        AND e.occurred_at < v_end) c ON true
                 ORDER BY c.cost DESC NULLS LAST, c.calls DESC, x.tenant_id
                 LIMIT 50) tt
         CROSS JOIN LATERAL (SELECT tt.tenant_id, q.* FROM llm_usage.quota_status(tt.tenant_id) q) s
         ORDER BY s.quota_limit IS NULL, s.percentage DESC NULLS LAST, s.tenant_id, s.quota_type,
                  array_position(ARRAY['minute', 'hour', 'day', 'month'], s.period)
    LOOP
        IF k.quota_limit IS NULL THEN
            q_unlim := q_unlim + 1;
            CONTINUE;
        END IF;
        IF coalesce(array_length(q_keys, 1), 0) >= 12 THEN
            q_more := q_more + 1;
            CONTINUE;
        END IF;
        q_keys := q_keys || (k.tenant_id || '|' || k.quota_type || '|' || k.period);
        q_labels := q_labels || (CASE WHEN v_single THEN '' ELSE k.tenant_id || ' · ' END
                                 || replace(k.quota_type, '_', ' ') || ' per ' || k.period);
        q_vals := q_vals || k.used;
        q_lims := q_lims || k.quota_limit;
        q_texts := q_texts || (llm_usage._report_num(k.used, CASE WHEN k.quota_type = 'cost_usd' THEN 'usd' ELSE 'int' END)
                               || ' of ' || llm_usage._report_num(k.quota_limit, CASE WHEN k.quota_type = 'cost_usd' THEN 'usd' ELSE 'int' END)
                               || ' · ' || llm_usage._report_num(k.percentage, 'pct'));
        q_cols := q_cols || CASE WHEN k.percentage >= 100 THEN '#e15759' WHEN k.percentage >= 80 THEN '#f28e2b'
                                 ELSE '#4e79a7' END;
    END LOOP;
    h := h || '<section class="card" id="quotas"><h2>Quota use now</h2>'
           || '<p class="sub">Use in the current period of each quota with a limit, fullest first; bar = share of the limit</p>'
           || llm_usage._report_hbars_pair('quota', q_keys, q_labels, q_vals, q_lims, q_texts, q_cols,
                                           'Quota use against limits')
           || llm_usage._report_legend(ARRAY['under 80 %', '80 % or more', 'at or over the limit'],
                                       ARRAY['#4e79a7', '#f28e2b', '#e15759'])
           || CASE WHEN q_unlim > 0 OR q_more > 0 THEN
                   format('<p class="note">%s%s</p>',
                          CASE WHEN q_more > 0 THEN q_more || ' more quotas with a limit not shown. ' ELSE '' END,
                          CASE WHEN q_unlim > 0 THEN q_unlim || ' quotas without a limit (counted only).' ELSE '' END)
                   ELSE '' END
           || '</section>';

    -- 5. tracked against provider-reported cost per UTC bucket
    WITH tr AS (
        SELECT date_trunc(v_bucket, e.occurred_at AT TIME ZONE 'UTC')::date AS b, sum(e.cost_usd) AS v
          FROM llm_usage.usage_events e
         WHERE e.tenant_id = ANY (v_tenants) AND e.occurred_at >= v_rstart AND e.occurred_at < v_rend
           AND (e.provider IN ('openai', 'anthropic')
                OR e.provider IN (SELECT DISTINCT c.provider FROM llm_usage.provider_costs c
                                   WHERE c.tenant_id = ANY (v_tenants)))
         GROUP BY 1),
    rp AS (
        SELECT date_trunc(v_bucket, c.bucket_start AT TIME ZONE 'UTC')::date AS b, sum(c.amount_usd) AS v
          FROM llm_usage.provider_costs c
         WHERE c.tenant_id = ANY (v_tenants) AND c.bucket_start >= v_rstart AND c.bucket_start < v_rend
         GROUP BY 1)
    SELECT ARRAY[array_agg(coalesce(tr.v, 0) ORDER BY kk.ki), array_agg(coalesce(rp.v, 0) ORDER BY kk.ki)],
           coalesce(sum(tr.v), 0), coalesce(sum(rp.v), 0)
      INTO v_vals, r_tracked, r_report
      FROM unnest(v_keys) WITH ORDINALITY kk(key, ki)
      LEFT JOIN tr ON tr.b = kk.key
      LEFT JOIN rp ON rp.b = kk.key;
    h := h || '<section class="card" id="reconciliation"><h2>Tracked vs provider-reported cost per ' || v_unit || '</h2>'
           || '<p class="sub">USD per UTC ' || v_unit || ', as the providers report; tracked = calls of OpenAI and Anthropic models (and of any provider that reported costs)</p>'
           || llm_usage._report_chart_pair('reconciliation', 'grouped', k_text, k_label,
                                           ARRAY['tracked', 'provider-reported'], ARRAY['#4e79a7', '#59a14f'], v_vals,
                                           'usd', NULL, 'Tracked and provider-reported cost in USD per UTC ' || v_unit, false)
           || llm_usage._report_legend(ARRAY['tracked', 'provider-reported'], ARRAY['#4e79a7', '#59a14f'])
           || format('<p class="note" id="reconciliation-total" data-tracked="%s" data-reported="%s">Tracked %s · provider-reported %s · difference %s%s</p>',
                     r_tracked, r_report, llm_usage._report_num(r_tracked, 'usd'), llm_usage._report_num(r_report, 'usd'),
                     llm_usage._report_num(r_report - r_tracked, 'usd'),
                     CASE WHEN r_report <> 0 THEN ' (' || llm_usage._report_num(round(100 * (r_report - r_tracked) / r_report, 1), 'pct') || ' of reported)'
                          ELSE '' END)
           || '</section>';

    -- 6. top consumers: tenants (several tenants) or event types (one tenant), by cost
    v_what := CASE WHEN v_single THEN 'event type' ELSE 'tenant' END;
    SELECT coalesce(array_agg(x.who ORDER BY x.cost DESC, x.calls DESC, x.who), '{}'),
           coalesce(array_agg(x.cost ORDER BY x.cost DESC, x.calls DESC, x.who), '{}'),
           coalesce(array_agg(x.mx ORDER BY x.cost DESC, x.calls DESC, x.who), '{}'),
           coalesce(array_agg(llm_usage._report_num(x.cost, 'usd') || ' · ' || llm_usage._report_num(x.calls, 'int')
                              || ' calls · ' || llm_usage._report_num(x.tokens, 'int') || ' tokens'
                              ORDER BY x.cost DESC, x.calls DESC, x.who), '{}')
      INTO c_keys, c_vals, c_max, c_texts
      FROM (SELECT y.*, max(y.cost) OVER () AS mx
              FROM (SELECT CASE WHEN v_single THEN e.event_type ELSE e.tenant_id END AS who,
                           coalesce(sum(e.cost_usd), 0) AS cost, count(*) AS calls,
                           coalesce(sum(e.total_tokens), 0) AS tokens
                      FROM llm_usage.usage_events e
                     WHERE e.tenant_id = ANY (v_tenants) AND e.occurred_at >= v_start AND e.occurred_at < v_end
                     GROUP BY 1
                     ORDER BY 2 DESC, 3 DESC, 1
                     LIMIT 10) y) x;
    c_cols := array_fill('#4e79a7'::text, ARRAY[greatest(coalesce(array_length(c_keys, 1), 0), 0)]);
    h := h || '<section class="card" id="consumers"><h2>Top consumers</h2>'
           || '<p class="sub">By tracked cost, per ' || v_what || '; bar = share of the largest</p>'
           || llm_usage._report_hbars_pair('consumers', c_keys, c_keys, c_vals, c_max, c_texts, c_cols,
                                           'Top consumers by cost') || '</section>';

    -- 7. models used without a price
    SELECT h || '<section class="card" id="unpriced"><h2>Models without a price</h2>'
           || '<p class="sub">Tracked calls whose cost is unknown (NULL): set a price with set_model_price()</p>'
           || CASE WHEN count(*) = 0 THEN '<p class="note" id="unpriced-none">Every tracked call in this period had a price.</p>'
                   ELSE '<table><thead><tr><th>Model</th><th class="n">Calls</th><th class="n">Tokens</th><th class="n">Last seen</th></tr></thead><tbody>'
                        || string_agg(format('<tr data-model="%s" data-calls="%s" data-tokens="%s"><td>%s</td><td class="n">%s</td><td class="n">%s</td><td class="n">%s</td></tr>',
                                             llm_usage._html(m.model), m.calls, m.tokens, llm_usage._html(m.model),
                                             llm_usage._report_num(m.calls, 'int'), llm_usage._report_num(m.tokens, 'int'),
                                             to_char(m.last_seen AT TIME ZONE v_zone, 'YYYY-MM-DD')),
                                      '' ORDER BY m.calls DESC, m.model)
                        || '</tbody></table>' END
           || '</section>'
      INTO h
      FROM (SELECT e.model, count(*) AS calls, coalesce(sum(e.total_tokens), 0) AS tokens, max(e.occurred_at) AS last_seen
              FROM llm_usage.usage_events e
             WHERE e.tenant_id = ANY (v_tenants) AND e.occurred_at >= v_start AND e.occurred_at < v_end
               AND e.cost_usd IS NULL AND e.model IS NOT NULL
             GROUP BY e.model
             ORDER BY 2 DESC, 1
             LIMIT 20) m;

    RETURN h || '</div></main>'
             || format('<footer>Generated %s UTC by llm_usage.usage_report_html(). Days are %s days; provider-reported cost in UTC days.</footer>',
                       to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), llm_usage._html(v_zone))
             || '</body></html>';
END
$$;
COMMENT ON FUNCTION llm_usage._usage_report_html_impl(text, text) IS
'Internal: the body of llm_usage.usage_report_html(), run as the owner by its entry point, which records the caller (src/caller.c); keeps to the caller''s tenants explicitly.';
