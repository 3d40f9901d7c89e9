"""The pieces of a self-contained HTML page: escaping, inline images (data: URIs), sortable and filterable
tables, the page shell with its style and its small hand-written script (no CDN, no framework: the page
opens offline from the file).

The script sorts a ``table.sortable`` on a click of a header (numbers by their ``data-v``, text otherwise;
cells without a value last either way), filters the rows of the table an ``input.filter`` names
(``data-table``), and, when the page is opened with ``#selftest``, checks itself once loaded: it clicks a
numeric header and checks the order (ascending, then descending on a second click), filters, checks that
every image decoded (``naturalWidth > 0``), that every interval (a ``.ci`` element, inside a cell whose
``data-n``, ``data-lo``, ``data-hi``, ``data-dlo``, ``data-dhi`` give its runs, bounds and the score's domain)
rests on at least ``bench.uncertainty.MIN_RUNS`` runs and lies within the domain, that no table (or its
scrolling box) and not the page reach past the window's width, and that no script error or ``console.error`` happened; the
result goes into ``<pre id="selftest">`` (JSON) and the title (``SELFTEST PASS`` / ``SELFTEST FAIL``).
``bench.report.browser`` reads it from a headless Chromium.
"""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any, Iterable

from bench.uncertainty import MIN_RUNS, fixed

__all__ = ["esc", "img", "img_file", "table", "page", "num", "details", "pre", "scroll"]

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1280px;padding:0 18px 60px;color:#1b1f24}
h1{font-size:22px;margin:18px 0 4px}h2{font-size:18px;margin-top:30px;border-bottom:1px solid #d0d7de;padding-bottom:3px}
h3{font-size:15px;margin:16px 0 6px}nav a{margin-right:12px}code,pre{font:12px ui-monospace,Menlo,Consolas,monospace}
pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:420px;border:1px solid #e1e4e8}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:right}
table.sortable td{white-space:nowrap}
th{background:#f0f3f6;position:sticky;top:0}td:first-child,th:first-child{text-align:left}
table.sortable th{cursor:pointer;user-select:none}th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.best{background:#dafbe1;font-weight:600}td.best::before{content:"\\2605 ";color:#1a7f37}
.muted{color:#57606a;font-size:12px}.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}
details{border:1px solid #d0d7de;border-radius:4px;margin:6px 0;padding:4px 10px}summary{cursor:pointer}
img{max-width:100%;height:auto;border:1px solid #eaeef2;margin:4px 0}input.filter{padding:4px 8px;width:320px;margin:4px 0}
td.better{background:#dafbe1;font-weight:600}td.worse{background:#ffebe9;font-weight:600}
.warn{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px}
.figs{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}
.scroll{overflow-x:auto;max-width:100%}.scroll table{margin:0}
#claims td:last-child{min-width:360px;overflow-wrap:anywhere}
.scroll table.sortable tbody td:first-child,.scroll table.sortable thead th:first-child{position:sticky;left:0;z-index:1;background:#fff;min-width:220px;max-width:340px;white-space:normal;overflow-wrap:anywhere}
.scroll table.sortable thead th:first-child{background:#f0f3f6;z-index:2}
"""

SCRIPT = r"""
(function(){
  var MINRUNS=__MIN_RUNS__;
  function val(td){var v=td.getAttribute('data-v');if(v===null)return td.textContent.trim().toLowerCase();
    if(v==='')return null;var f=parseFloat(v);return isNaN(f)?null:f;}
  function sortBy(table,col,th){
    var tb=table.tBodies[0],rows=Array.prototype.slice.call(tb.rows),asc=th.getAttribute('aria-sort')!=='ascending';
    rows.sort(function(a,b){var x=val(a.cells[col]),y=val(b.cells[col]);
      if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;var r=x<y?-1:(x>y?1:0);return asc?r:-r;});
    rows.forEach(function(r){tb.appendChild(r);});
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(h){h.removeAttribute('aria-sort');});
    th.setAttribute('aria-sort',asc?'ascending':'descending');
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'),function(t){
    Array.prototype.forEach.call(t.tHead.rows[0].cells,function(th,i){
      th.addEventListener('click',function(e){if(e.target.tagName!=='A')sortBy(t,i,th);});});});
  Array.prototype.forEach.call(document.querySelectorAll('input.filter'),function(inp){
    var t=document.getElementById(inp.getAttribute('data-table'));
    inp.addEventListener('input',function(){var q=inp.value.toLowerCase();
      Array.prototype.forEach.call(t.tBodies[0].rows,function(r){r.style.display=r.textContent.toLowerCase().indexOf(q)>=0?'':'none';});});});
  function column(t,i){return Array.prototype.map.call(t.tBodies[0].rows,function(r){return val(r.cells[i]);}).filter(function(v){return v!==null;});}
  function ordered(v,asc){for(var i=1;i<v.length;i++){if(asc?v[i-1]>v[i]:v[i-1]<v[i])return false;}return true;}
  function selftest(){
    var res={images:document.images.length,bad_images:[],sort:null,filter:null,errors:window.__errors||[]};
    Array.prototype.forEach.call(document.images,function(im){if(!(im.complete&&im.naturalWidth>0))res.bad_images.push(im.alt||im.src.slice(0,40));});
    var t=document.querySelector('table.sortable'),th=t&&t.querySelector('thead th[data-type=num]');
    if(th){var i=th.cellIndex;th.dispatchEvent(new MouseEvent('click',{bubbles:true}));var up=column(t,i);
      th.dispatchEvent(new MouseEvent('click',{bubbles:true}));var down=column(t,i);
      res.sort={column:th.textContent.trim(),values:up.length,ascending:ordered(up,true),descending:ordered(down,false),
                marked:th.getAttribute('aria-sort')==='descending'};}
    var inp=document.querySelector('input.filter');
    if(inp&&t&&t.tBodies[0].rows.length){var rows=t.tBodies[0].rows,name=rows[rows.length-1].cells[0].textContent.trim();
      inp.value=name;inp.dispatchEvent(new Event('input'));
      var shown=Array.prototype.filter.call(rows,function(r){return r.style.display!=='none';}).length;
      inp.value='';inp.dispatchEvent(new Event('input'));res.filter={query:name,shown:shown,rows:rows.length};}
    var iv={checked:0,bad:[]};
    Array.prototype.forEach.call(document.querySelectorAll('.ci'),function(sp){
      var td=sp.closest('[data-lo]');iv.checked++;
      if(!td){iv.bad.push('no bounds: '+sp.textContent);return;}
      var n=+td.getAttribute('data-n'),lo=+td.getAttribute('data-lo'),hi=+td.getAttribute('data-hi'),
          dlo=+td.getAttribute('data-dlo'),dhi=+td.getAttribute('data-dhi'),eps=1e-9;
      if(!(n>=MINRUNS))iv.bad.push('interval from n='+n+': '+sp.textContent);
      if(!(lo<=hi&&lo>=dlo-eps&&hi<=dhi+eps))iv.bad.push('outside ['+dlo+', '+dhi+']: '+sp.textContent);});
    res.intervals=iv;
    var wide=[];Array.prototype.forEach.call(document.querySelectorAll('table'),function(t){
      var box=t.closest('.scroll')||t,r=box.getBoundingClientRect().right;
      if(r>window.innerWidth+1)wide.push((t.id||'table')+': '+Math.round(r)+' px');});
    res.width={window:window.innerWidth,page:document.documentElement.scrollWidth,wide_tables:wide};
    res.ok=res.bad_images.length===0&&iv.bad.length===0&&wide.length===0&&res.width.page<=res.width.window+1&&res.errors.length===0&&(!res.sort||(res.sort.ascending&&res.sort.descending&&res.sort.marked))
           &&(!res.filter||(res.filter.shown>=1&&res.filter.shown<=res.filter.rows));
    var pre=document.createElement('pre');pre.id='selftest';pre.textContent=JSON.stringify(res);document.body.appendChild(pre);
    document.title='SELFTEST '+(res.ok?'PASS':'FAIL');
  }
  if(location.hash==='#selftest'){if(document.readyState==='complete')selftest();else window.addEventListener('load',selftest);}
})();
"""

SCRIPT = SCRIPT.replace("__MIN_RUNS__", str(MIN_RUNS))

# First thing in <head>: record script errors and console.error calls, for the self-test.
CATCH = ("window.__errors=[];window.addEventListener('error',function(e){window.__errors.push(String(e.message||e));});"
         "(function(c){console.error=function(){window.__errors.push(Array.prototype.join.call(arguments,' '));"
         "return c.apply(console,arguments);};})(console.error);")


def esc(text: Any) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def num(v: Any, digits: int = 3) -> str:
    """A number for a cell: '–' for None/NaN."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    try:
        return fixed(float(v), digits)
    except (TypeError, ValueError):
        return esc(v)


def js_num(v: float) -> str:
    """A float as JavaScript's Number() reads it back (``Infinity`` for inf)."""
    return "Infinity" if v == math.inf else "-Infinity" if v == -math.inf else repr(float(v))


def interval_attrs(n: int, low: float, high: float, bounds: tuple[float, float]) -> str:
    """The data attributes of a cell holding an interval (its runs, bounds and the score's domain), which the
    page's self-test checks."""
    return (f' data-n="{n}" data-lo="{js_num(low)}" data-hi="{js_num(high)}" data-dlo="{js_num(bounds[0])}"'
            f' data-dhi="{js_num(bounds[1])}"')


def img(png: bytes, alt: str, width: int | None = None) -> str:
    """An <img> holding the PNG inline (a data: URI), so that the page needs no other file."""
    w = f' width="{width}"' if width else ""
    return f'<img alt="{esc(alt)}"{w} src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def img_file(path: str | Path, alt: str, width: int | None = None) -> str:
    """:func:`img` of a PNG file ('' when it does not exist)."""
    p = Path(path)
    return img(p.read_bytes(), alt, width) if p.is_file() else ""


def table(head: Iterable[str], rows: Iterable[Iterable[str]], *, table_id: str | None = None, sortable: bool = False,
          raw_head: bool = False) -> str:
    """A table. ``head``: header cells (escaped unless ``raw_head``; a cell may already be ``<th ...>``); ``rows``:
    cells as HTML (each either a ``<td ...>...</td>`` string or plain inner HTML)."""
    cells = [h if h.startswith("<th") else f"<th>{h if raw_head else esc(h)}</th>" for h in head]
    body = []
    for r in rows:
        body.append("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in r) + "</tr>")
    attrs = (f' id="{esc(table_id)}"' if table_id else "") + (' class="sortable"' if sortable else "")
    return f"<table{attrs}><thead><tr>{''.join(cells)}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def scroll(inner: str) -> str:
    """A block that scrolls sideways when ``inner`` (a wide table) is wider than the page; the first column of
    a sortable table in it stays in view (sticky)."""
    return f'<div class="scroll">{inner}</div>'


def details(summary_html: str, body: str, anchor: str | None = None) -> str:
    a = f' id="{esc(anchor)}"' if anchor else ""
    return f"<details{a}><summary>{summary_html}</summary>{body}</details>"


def pre(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def page(title: str, body: str) -> str:
    """The whole document: UTF-8, the style, the error catcher first, the script last."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
            f"<script>{CATCH}</script><style>{STYLE}</style></head><body>{body}<script>{SCRIPT}</script></body></html>\n")
