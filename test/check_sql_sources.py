#!/usr/bin/env python3
"""check_sql_sources.py ROOT — the SQL sources keep one place per object.

Run by test/run-all.sh after `make` (it reads the generated scripts).  Checks:
  * the released scripts are byte for byte as they shipped (SHA256SUMS);
  * in the generated install script every function, view, trigger, table,
    type, sequence and index is created exactly once, and nothing is
    created "OR REPLACE" (it must not adopt an object that already exists);
  * across src/sql/ every object has one definition, in one file;
  * the re-runnable area files hold only re-runnable statements (CREATE OR
    REPLACE, COMMENT, GRANT/REVOKE, DO) and no table, type or data change;
  * the generated update script is the delta followed by every area file.
  * no file of the tree holds a merge-conflict marker.
Prints what it checked; exits 1 if any check failed.
"""
import hashlib
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..')
SQL = os.path.join(ROOT, 'src', 'sql')


def statements(text):
    """Split SQL text into statements (outside quotes, comments, dollar quotes)."""
    out, i, n, start = [], 0, len(text), 0
    while i < n:
        if text.startswith('--', i):
            j = text.find('\n', i)
            i = n if j < 0 else j + 1
        elif text.startswith('/*', i):
            i = text.find('*/', i + 2) + 2
        elif text[i] == "'":
            j = i + 1
            while True:
                j = text.find("'", j)
                if text.startswith("''", j):
                    j += 2
                    continue
                break
            i = j + 1
        elif text[i] == '"':
            i = text.find('"', i + 1) + 1
        elif text[i] == '$' and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == '_')):
            m = re.match(r'\$([A-Za-z_][A-Za-z_0-9]*)?\$', text[i:])
            if m:
                i = text.find(m.group(0), i + len(m.group(0))) + len(m.group(0))
            else:
                i += 1
        elif text.startswith('\\echo', i):
            j = text.find('\n', i)
            start = i = j + 1
        elif text[i] == ';':
            out.append(text[start:i + 1])
            start = i = i + 1
        else:
            i += 1
    return [strip_comments(s) for s in out]


def strip_comments(s):
    s = re.sub(r'^(\s|--[^\n]*\n|/\*.*?\*/)*', '', s, flags=re.S)
    return ' '.join(s.split())


DEF = re.compile(r'^CREATE (OR REPLACE )?(FUNCTION|VIEW|TABLE|TYPE|SEQUENCE|(?:UNIQUE )?INDEX|TRIGGER) '
                 r'(?:IF NOT EXISTS )?([\w.]+)(?:.* ON ([\w.]+))?', re.I)


def defined(stmt):
    m = DEF.match(stmt)
    if not m:
        return None
    kind = m.group(2).upper().replace('UNIQUE ', '')
    name = m.group(3)
    if kind == 'TRIGGER':
        name += ' ON ' + (m.group(4) or '?')
    elif kind == 'INDEX' and m.group(4) is None:
        return None
    return kind, name, bool(m.group(1))


failures = []


def check(ok, what):
    print(('ok      ' if ok else 'FAILED  ') + what)
    if not ok:
        failures.append(what)


# 1. released scripts
rel = os.path.join(SQL, 'released')
bad = []
for line in open(os.path.join(rel, 'SHA256SUMS')):
    digest, name = line.split()
    if hashlib.sha256(open(os.path.join(rel, name), 'rb').read()).hexdigest() != digest:
        bad.append(name)
check(not bad, 'released scripts unchanged byte for byte (%s)' % (', '.join(bad) or 'all of SHA256SUMS'))

# 2. the generated install script
ver = re.search(r"^default_version = '(.*)'$", open(os.path.join(ROOT, 'llm_usage.control')).read(), re.M).group(1)
last = re.search(r'^LAST_RELEASE\s*=\s*(\S+)', open(os.path.join(ROOT, 'Makefile')).read(), re.M).group(1)
install = open(os.path.join(ROOT, 'llm_usage--%s.sql' % ver)).read()
seen, dups, replaced = {}, [], []
for st in statements(install):
    d = defined(st)
    if d:
        key = d[:2]
        if key in seen:
            dups.append('%s %s' % key)
        seen[key] = 1
        if d[2]:
            replaced.append('%s %s' % key)
counts = {}
for k, _ in seen:
    counts[k] = counts.get(k, 0) + 1
check(not dups, 'install script llm_usage--%s.sql: each object created once (%s)%s' % (
    ver, ', '.join('%d %s' % (v, k.lower()) for k, v in sorted(counts.items())),
    ''.join('\n        duplicate: ' + d for d in dups)))
check(not replaced, 'install script creates, never replaces%s' % ''.join('\n        OR REPLACE: ' + r for r in replaced))

# 3. sources: one definition per object across every file
sources = {}
for sub in ('pre_install', '', 'post_install'):
    d = os.path.join(SQL, sub)
    for f in sorted(os.listdir(d)):
        if f.endswith('.sql'):
            sources[os.path.join(sub, f) if sub else f] = open(os.path.join(d, f)).read()
where, dups = {}, []
for f, text in sources.items():
    for st in statements(text):
        d = defined(st)
        if d:
            if d[:2] in where:
                dups.append('%s %s in %s and %s' % (d[0], d[1], where[d[:2]], f))
            where[d[:2]] = f
check(not dups, 'src/sql: one definition per object in %d files%s' % (len(sources), ''.join('\n        ' + d for d in dups)))

# 4. area files hold only re-runnable statements
RERUN = re.compile(r'^(CREATE OR REPLACE (FUNCTION|VIEW|TRIGGER)|COMMENT ON|GRANT|REVOKE|DO )', re.I)
stateful = []
for f, text in sources.items():
    if os.sep in f:
        continue
    for st in statements(text):
        if not RERUN.match(st):
            stateful.append('%s: %s' % (f, st[:90]))
check(not stateful, 'area files are re-runnable (CREATE OR REPLACE, COMMENT, GRANT/REVOKE, DO only)%s'
      % ''.join('\n        ' + s for s in stateful))

# 5. the update script is the delta plus every area file
update = open(os.path.join(ROOT, 'llm_usage--%s--%s.sql' % (last, ver))).read()
parts = re.findall(r'^-- source: (\S+)$', update, re.M)
mk = open(os.path.join(ROOT, 'Makefile')).read()
areas = re.search(r'SQL_SOURCES\s*=\s*\$\(addprefix src/sql/,(.*?)\)\n', mk, re.S).group(1).replace('\\', ' ').split()
expect = ['src/sql/updates/%s--%s.sql' % (last, ver)] + ['src/sql/' + a for a in areas]
check(parts == expect, 'update script llm_usage--%s--%s.sql = delta + %d area files' % (last, ver, len(areas)))
missing = sorted(set(f for f in sources if os.sep not in f) - set(areas))
check(not missing, 'every area file is in SQL_SOURCES%s' % ''.join('\n        not listed: ' + m for m in missing))

# 6. no merge-conflict markers anywhere in the tree
marked = []
for dirpath, dirnames, filenames in os.walk(ROOT):
    dirnames[:] = [d for d in dirnames if d not in ('.git', 'results', 'tmp_check', 'log')]
    for f in filenames:
        path = os.path.join(dirpath, f)
        try:
            with open(path, encoding='utf-8') as fh:
                for n, line in enumerate(fh, 1):
                    if re.match(r'^(<{7} |>{7} |={7}$)', line):
                        marked.append('%s:%d' % (os.path.relpath(path, ROOT), n))
                        break
        except (UnicodeDecodeError, OSError):
            pass
check(not marked, 'no merge-conflict markers in the tree%s' % ''.join('\n        ' + m for m in marked))

sys.exit(1 if failures else 0)
