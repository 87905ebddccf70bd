#!/usr/bin/env python3
"""report_browser.py — render the HTML usage report in headless Chromium and check its DOM.

Usage: report_browser.py CHROMIUM REPORT.html EXPECTED.json OUTDIR WIDTH...
       report_browser.py shot CHROMIUM REPORT.html OUT.png WIDTH   (a full-page screenshot only)

Drives Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe:
commands on fd 3, events and replies on fd 4, NUL-terminated JSON), so it
needs nothing but Python's standard library.  For each width (height 800,
a phone for widths under 600) it loads the file, then checks:

  * every section is there and visible, each chart shows marks, legends;
  * no <script> element, and no request but the document itself;
  * every mark's data-value equals the figure computed in SQL
    (EXPECTED.json, from the tables, not from the report), and the numbers
    in the visible labels (key figures, bar texts, tooltips, table cells,
    the reconciliation line) equal those figures at the precision shown;
  * the y axis covers the tallest column;
  * no text overflows its box: SVG text inside its SVG and not overlapping
    other text, HTML text not wider than its box nor the viewport, and no
    horizontal scrolling; chart text is at least 9.5 CSS px;
  * user data shows as text (the hostile tenant id and model name appear in
    the text, never as elements), and the tenants that must be absent are.

Then it takes a full-page screenshot (OUTDIR/report-WIDTH.png).  Prints
what it checked and exits 1 on the first failing width.
"""
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from decimal import ROUND_HALF_UP, Decimal


class Browser:
    """A headless Chromium driven over --remote-debugging-pipe."""

    def __init__(self, chromium):
        self.udd = tempfile.mkdtemp(prefix='llm_usage_chromium.')
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()

        def fds():
            # copies first: the pipes may themselves be fds 3 and 4
            a, b = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self.proc = subprocess.Popen(
            [chromium, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync',
             '--disable-extensions', '--hide-scrollbars', '--mute-audio', '--remote-debugging-pipe',
             '--user-data-dir=' + self.udd, 'about:blank'],
            # the pipes are close-on-exec; fds() makes inheritable copies as
            # 3 and 4, which close_fds would close again (it runs after it)
            close_fds=False, preexec_fn=fds,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        self.buf = b''
        self.next_id = 0
        self.events = []
        self.session = None

    def send(self, method, params=None, session=True, timeout=30):
        self.next_id += 1
        msg = {'id': self.next_id, 'method': method, 'params': params or {}}
        if session and self.session:
            msg['sessionId'] = self.session
        os.write(self.to_child, json.dumps(msg).encode() + b'\0')
        deadline = time.time() + timeout
        while True:
            m = self.read(deadline)
            if m.get('id') == self.next_id:
                if 'error' in m:
                    raise RuntimeError('%s: %s' % (method, m['error']))
                return m.get('result', {})
            self.events.append(m)

    def read(self, deadline):
        while b'\0' not in self.buf:
            if time.time() > deadline:
                raise TimeoutError('no answer from chromium')
            chunk = os.read(self.from_child, 1 << 16)
            if not chunk:
                raise RuntimeError('chromium closed the pipe')
            self.buf += chunk
        raw, self.buf = self.buf.split(b'\0', 1)
        return json.loads(raw)

    def wait_event(self, method, timeout=30):
        deadline = time.time() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e.get('method') == method:
                    del self.events[i]
                    return e
            self.events.append(self.read(deadline))

    def attach(self):
        targets = self.send('Target.getTargets', session=False)['targetInfos']
        page = next(t for t in targets if t['type'] == 'page')
        self.session = self.send('Target.attachToTarget', {'targetId': page['targetId'], 'flatten': True},
                                 session=False)['sessionId']

    def close(self):
        try:
            self.send('Browser.close', session=False, timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        subprocess.run(['rm', '-rf', self.udd])


# What the page reports about itself: run in the page, returns JSON.
DOM_FACTS = r"""
(() => {
  const vis = el => { const r = el.getBoundingClientRect(); const cs = getComputedStyle(el);
                      return r.width > 0 && r.height > 0 && cs.visibility !== 'hidden' && cs.display !== 'none'; };
  const R = el => { const r = el.getBoundingClientRect(); return {l: r.left, t: r.top, r: r.right, b: r.bottom}; };
  const out = {scripts: document.scripts.length, title: document.title, text: document.body.innerText,
               docWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
               sections: {}, marks: [], kpis: [], hvals: [], ticks: {}, unpriced: [], problems: [],
               recon: null, minFontPx: 1e9, svgCount: 0, textCount: 0, elements: document.querySelectorAll('*').length};
  for (const id of ['kpis', 'cost-by-model', 'tokens', 'quality', 'quotas', 'reconciliation', 'consumers', 'unpriced']) {
    const s = document.getElementById(id);
    out.sections[id] = s ? {visible: vis(s), svgs: [...s.querySelectorAll('svg.chart-svg')].filter(vis).length,
                            legend: [...s.querySelectorAll('.legend li')].filter(vis).length,
                            heading: (s.querySelector('h2') || {}).textContent || ''} : null;
  }
  for (const svg of document.querySelectorAll('svg.chart-svg')) {
    if (!vis(svg)) continue;
    out.svgCount++;
    const chart = svg.dataset.chart;
    const sr = R(svg);
    const vb = svg.viewBox.baseVal;
    const scale = (sr.r - sr.l) / vb.width;
    for (const m of svg.querySelectorAll('.mark')) {
      const t = m.querySelector('title');
      out.marks.push({chart, x: m.dataset.x || null, key: m.dataset.key || null, series: m.dataset.series || null,
                      value: m.dataset.value, limit: m.dataset.limit || null, title: t ? t.textContent : null,
                      h: m.tagName === 'rect' ? m.getBoundingClientRect().height : null});
    }
    for (const h of svg.querySelectorAll('text.hval')) out.hvals.push({chart, text: h.textContent});
    out.ticks[chart] = [...svg.querySelectorAll('text.tick')].map(t => t.textContent);
    const texts = [...svg.querySelectorAll('text')].filter(vis);
    const boxes = texts.map(t => ({s: t.textContent, ...R(t)}));
    for (const t of texts) {
      out.textCount++;
      const px = parseFloat(getComputedStyle(t).fontSize) * scale;
      out.minFontPx = Math.min(out.minFontPx, px);
    }
    for (const b of boxes) {
      if (b.l < sr.l - 1 || b.r > sr.r + 1 || b.t < sr.t - 1 || b.b > sr.b + 1)
        out.problems.push(`${chart}: text "${b.s}" leaves its chart (${b.l.toFixed(1)}..${b.r.toFixed(1)} in ${sr.l.toFixed(1)}..${sr.r.toFixed(1)})`);
    }
    for (let i = 0; i < boxes.length; i++)
      for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i], b = boxes[j];
        const w = Math.min(a.r, b.r) - Math.max(a.l, b.l), h = Math.min(a.b, b.b) - Math.max(a.t, b.t);
        if (w > 0.5 && h > 0.5) out.problems.push(`${chart}: text "${a.s}" overlaps "${b.s}"`);
      }
  }
  for (const k of document.querySelectorAll('.kpi'))
    out.kpis.push({kpi: k.dataset.kpi, value: k.dataset.value, text: k.querySelector('.v').textContent, visible: vis(k)});
  for (const tr of document.querySelectorAll('#unpriced tbody tr'))
    out.unpriced.push({model: tr.dataset.model, calls: tr.dataset.calls, tokens: tr.dataset.tokens,
                       cells: [...tr.querySelectorAll('td')].map(td => td.textContent)});
  const rc = document.getElementById('reconciliation-total');
  if (rc) out.recon = {tracked: rc.dataset.tracked, reported: rc.dataset.reported, text: rc.textContent};
  for (const el of document.querySelectorAll('h1,h2,h3,p,li,td,th,.kpi,.kpi .v,.kpi .l,.card,footer,header')) {
    if (!vis(el)) continue;
    const r = R(el);
    if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).display !== 'inline')
      out.problems.push(`${el.tagName.toLowerCase()}.${el.className}: content ${el.scrollWidth}px wider than its box ${el.clientWidth}px: "${el.textContent.slice(0, 40)}"`);
    if (r.l < -0.5 || r.r > window.innerWidth + 0.5)
      out.problems.push(`${el.tagName.toLowerCase()}.${el.className}: outside the viewport (${r.l.toFixed(1)}..${r.r.toFixed(1)})`);
  }
  if (out.docWidth > out.innerWidth) out.problems.push(`page scrolls sideways: ${out.docWidth} > ${out.innerWidth}`);
  return JSON.stringify(out);
})()
"""

NUM = re.compile(r'-?\$?-?[0-9][0-9,]*(?:\.[0-9]+)?')


def numbers(text):
    """The numbers in a label, with the precision each is shown at: [(Decimal, places)]."""
    out = []
    for m in NUM.finditer(text.replace('\u2013', ' ')):
        s = m.group(0).replace('$', '').replace(',', '')
        out.append((Decimal(s), len(s.split('.')[1]) if '.' in s else 0))
    return out


def shown_as(value, shown):
    """Whether the exact value, rounded as shown, is the shown number."""
    num, places = shown
    # the report rounds half away from zero (SQL round(), Intl.NumberFormat)
    return Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP) == num


class Check:
    def __init__(self, width):
        self.width = width
        self.failures = []
        self.count = 0

    def __call__(self, cond, what):
        self.count += 1
        if not cond:
            self.failures.append(what)


def check_width(b, url, expected, outdir, width):
    c = Check(width)
    mobile = width < 600
    b.send('Emulation.setDeviceMetricsOverride', {'width': width, 'height': 800, 'deviceScaleFactor': 1,
                                                  'mobile': mobile})
    b.events.clear()
    b.send('Page.navigate', {'url': url})
    b.wait_event('Page.loadEventFired')
    facts = json.loads(b.send('Runtime.evaluate', {'expression': DOM_FACTS, 'returnByValue': True})['result']['value'])
    requests = [e['params']['request']['url'] for e in b.events if e.get('method') == 'Network.requestWillBeSent']

    # structure
    c(facts['innerWidth'] == width, 'viewport is %s px, not %s' % (facts['innerWidth'], width))
    c(facts['scripts'] == 0, '%d script elements' % facts['scripts'])
    c(requests == [url], 'requests other than the document: %s' % requests)
    for sid, s in facts['sections'].items():
        c(s is not None and s['visible'], 'section %s missing or hidden' % sid)
    for sid, n in (('cost-by-model', 1), ('tokens', 1), ('quality', 2), ('quotas', 1), ('reconciliation', 1),
                   ('consumers', 1)):
        s = facts['sections'][sid] or {}
        c(s.get('svgs') == n, '%s: %s visible charts, expected %s' % (sid, s.get('svgs'), n))
    for sid in ('cost-by-model', 'tokens', 'quality', 'quotas', 'reconciliation'):
        c((facts['sections'][sid] or {}).get('legend', 0) >= 2, '%s: no legend' % sid)

    # every mark equals the SQL figure, and its tooltip shows it
    got = {}
    for m in facts['marks']:
        k = (m['chart'], m['x'] or m['key'], m['series'])
        c(k not in got, 'mark %s drawn twice' % (k,))
        got[k] = m
    want = {}
    for chart in ('cost', 'tokens', 'success_rate', 'p95_latency', 'reconciliation'):
        for r in expected[chart]:
            if r['value'] is None or (chart in ('cost', 'tokens', 'reconciliation') and Decimal(r['value']) == 0):
                continue
            want[(chart, r['x'], r['series'])] = r['value']
    for r in expected['quota']:
        want[('quota', r['key'], None)] = r['value']
    for r in expected['consumers']:
        want[('consumers', r['key'], None)] = r['value']
    c(set(got) == set(want), 'marks differ from SQL: missing %s, extra %s'
      % (sorted(set(want) - set(got))[:5], sorted(set(got) - set(want))[:5]))
    for k, v in want.items():
        m = got.get(k)
        if m is None:
            continue
        c(Decimal(m['value']) == Decimal(v), 'mark %s: data-value %s, SQL %s' % (k, m['value'], v))
        if k[0] in ('cost', 'tokens', 'success_rate', 'p95_latency', 'reconciliation'):
            shown = numbers(m['title'].rsplit(': ', 1)[-1])
            c(len(shown) == 1 and shown_as(v, shown[0]), 'mark %s: tooltip "%s" is not %s' % (k, m['title'], v))
    for r in expected['quota']:
        m = got.get(('quota', r['key'], None))
        c(m is not None and Decimal(m['limit']) == Decimal(r['limit']), 'quota %s: limit %s, SQL %s'
          % (r['key'], m and m['limit'], r['limit']))

    # the labels people read
    for k in facts['kpis']:
        e = expected['kpis'].get(k['kpi'])
        c(k['visible'], 'key figure %s hidden' % k['kpi'])
        c(e is not None and Decimal(k['value'] or 'NaN') == Decimal(e), 'key figure %s: %s, SQL %s' % (k['kpi'], k['value'], e))
        shown = numbers(k['text'])
        c(len(shown) == 1 and e is not None and shown_as(e, shown[0]), 'key figure %s reads "%s", SQL %s' % (k['kpi'], k['text'], e))
    c(sorted(k['kpi'] for k in facts['kpis']) == sorted(expected['kpis']), 'key figures: %s' % [k['kpi'] for k in facts['kpis']])
    qtexts = [h['text'] for h in facts['hvals'] if h['chart'] == 'quota']
    c(len(qtexts) == len(expected['quota']), 'quota rows: %d, SQL %d' % (len(qtexts), len(expected['quota'])))
    for text, r in zip(qtexts, expected['quota']):
        shown = numbers(text)
        c(len(shown) == 3 and shown_as(r['value'], shown[0]) and shown_as(r['limit'], shown[1])
          and shown_as(r['pct'], shown[2]), 'quota %s reads "%s", SQL %s of %s (%s%%)' % (r['key'], text, r['value'], r['limit'], r['pct']))
    ctexts = [h['text'] for h in facts['hvals'] if h['chart'] == 'consumers']
    c(len(ctexts) == len(expected['consumers']), 'consumer rows: %d, SQL %d' % (len(ctexts), len(expected['consumers'])))
    for text, r in zip(ctexts, expected['consumers']):
        shown = numbers(text)
        c(len(shown) == 3 and shown_as(r['value'], shown[0]) and shown_as(r['calls'], shown[1])
          and shown_as(r['tokens'], shown[2]), 'consumer %s reads "%s", SQL %s' % (r['key'], text, r))
    c(len(facts['unpriced']) == len(expected['unpriced']), 'unpriced rows: %d, SQL %d' % (len(facts['unpriced']), len(expected['unpriced'])))
    for row, r in zip(facts['unpriced'], expected['unpriced']):
        c(row['model'] == r['model'] and row['cells'][0] == r['model'], 'unpriced model %r, SQL %r' % (row['cells'][0], r['model']))
        c(shown_as(r['calls'], numbers(row['cells'][1])[0]) and shown_as(r['tokens'], numbers(row['cells'][2])[0]),
          'unpriced %s reads %s, SQL %s' % (r['model'], row['cells'], r))
    rc = facts['recon'] or {}
    c(rc and Decimal(rc['tracked']) == Decimal(expected['recon']['tracked'])
      and Decimal(rc['reported']) == Decimal(expected['recon']['reported']), 'reconciliation totals %s, SQL %s' % (rc, expected['recon']))
    shown = numbers(rc.get('text', ''))
    c(len(shown) >= 3 and shown_as(expected['recon']['tracked'], shown[0]) and shown_as(expected['recon']['reported'], shown[1])
      and shown_as(Decimal(expected['recon']['reported']) - Decimal(expected['recon']['tracked']), shown[2]),
      'reconciliation reads "%s"' % rc.get('text'))

    # the y axis covers the tallest stacked column
    for chart in ('cost', 'tokens'):
        tot = {}
        for r in expected[chart]:
            tot[r['x']] = tot.get(r['x'], Decimal(0)) + Decimal(r['value'] or 0)
        ticks = facts['ticks'].get(chart) or ['0']
        top = ticks[-1].replace('$', '').replace(',', '')
        mult = {'k': 1000, 'M': 1000000}.get(top[-1:], 1)
        top = Decimal(top.rstrip('kM')) * mult
        c(top >= max(tot.values() or [0]), '%s: top tick %s below the tallest column %s' % (chart, ticks[-1], max(tot.values() or [0])))

    # nothing overflows, text readable
    for p in facts['problems']:
        c(False, p)
    c(facts['minFontPx'] >= 9.5, 'chart text as small as %.1f px' % facts['minFontPx'])

    # user data is text, and only the visible tenants are there
    for s in expected['present']:
        c(s in facts['text'], 'text %r missing' % s)
    for s in expected['absent']:
        c(s not in facts['text'] and s not in json.dumps(facts['marks']), 'text %r present' % s)

    # a full-page screenshot
    metrics = b.send('Page.getLayoutMetrics')
    height = int(metrics['cssContentSize']['height'] + 0.5)
    b.send('Emulation.setDeviceMetricsOverride', {'width': width, 'height': height, 'deviceScaleFactor': 1,
                                                  'mobile': mobile})
    shot = base64.b64decode(b.send('Page.captureScreenshot', {'format': 'png'})['data'])
    path = os.path.join(outdir, 'report-%d.png' % width)
    with open(path, 'wb') as f:
        f.write(shot)
    w, h = int.from_bytes(shot[16:20], 'big'), int.from_bytes(shot[20:24], 'big')
    c(w == width and h == height, 'screenshot is %dx%d' % (w, h))

    print('  %4d px: %d checks; %d sections, %d charts, %d marks, %d chart texts (smallest %.1f px), '
          '%d key figures, %d quota and %d consumer bars, %d unpriced rows, %d requests, %d scripts; '
          'screenshot %s %dx%d (%d bytes)'
          % (width, c.count, len(facts['sections']), facts['svgCount'], len(facts['marks']), facts['textCount'],
             facts['minFontPx'], len(facts['kpis']), len(qtexts), len(ctexts), len(facts['unpriced']), len(requests),
             facts['scripts'], path, w, h, len(shot)))
    for f in c.failures[:20]:
        print('  FAIL (%d px): %s' % (width, f))
    return not c.failures


def shot(chromium, html, png, width):
    """A full-page screenshot of html at width px (report_browser.py shot CHROMIUM HTML PNG WIDTH)."""
    b = Browser(chromium)
    try:
        b.attach()
        b.send('Page.enable')
        b.send('Emulation.setDeviceMetricsOverride', {'width': width, 'height': 800, 'deviceScaleFactor': 1,
                                                      'mobile': width < 600})
        b.send('Page.navigate', {'url': 'file://' + os.path.abspath(html)})
        b.wait_event('Page.loadEventFired')
        height = int(b.send('Page.getLayoutMetrics')['cssContentSize']['height'] + 0.5)
        b.send('Emulation.setDeviceMetricsOverride', {'width': width, 'height': height, 'deviceScaleFactor': 1,
                                                      'mobile': width < 600})
        with open(png, 'wb') as f:
            f.write(base64.b64decode(b.send('Page.captureScreenshot', {'format': 'png'})['data']))
        print('%s: %dx%d' % (png, width, height))
    finally:
        b.close()


def main():
    if sys.argv[1] == 'shot':
        return shot(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    chromium, html, expected_file, outdir = sys.argv[1:5]
    widths = [int(w) for w in sys.argv[5:]]
    with open(expected_file) as f:
        expected = json.load(f)
    url = 'file://' + os.path.abspath(html)
    b = Browser(chromium)
    ok = True
    try:
        b.attach()
        b.send('Page.enable')
        b.send('Network.enable')
        b.send('Runtime.enable')
        for w in widths:
            ok = check_width(b, url, expected, outdir, w) and ok
    finally:
        b.close()
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
