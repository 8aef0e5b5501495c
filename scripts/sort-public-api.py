#!/usr/bin/env python3
"""Sorts and de-duplicates the pinned name lists of test/package/public-api.ts in place (JS sort order)."""
import re, sys
p = 'test/package/public-api.ts'
s = open(p).read()
def fix(m):
    indent, key, body = m.group(1), m.group(2), m.group(3)
    names = sorted(set(re.findall(r"'([^']+)'", body)))
    lines, cur = [], ''
    for n in names:
        item = f"'{n}',"
        if cur and len(indent) + 2 + len(cur) + 1 + len(item) > 140:
            lines.append(cur); cur = item
        else:
            cur = item if not cur else cur + ' ' + item
    if cur: lines.append(cur)
    inner = ''.join(f"{indent}  {l}\n" for l in lines)
    return f"{indent}{key}: [\n{inner}{indent}],"
s2 = re.sub(r"(?m)^( +)(values|types): \[\n(.*?)^\1\],", fix, s, flags=re.S)
open(p, 'w').write(s2)
