// Evaluated in the page by tests/console/audit.py; its value is the audit's result.
(() => {
  const problems = [];
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    const s = getComputedStyle(el);
    return r.width > 1 && r.height > 1 && s.visibility !== 'hidden' && s.display !== 'none'
      && !el.closest('.visually-hidden');
  };
  for (const el of document.querySelectorAll('input, select, textarea, button, a[href]')) {
    if (!visible(el)) continue;
    const labelled = el.getAttribute('aria-labelledby');
    const name = (el.getAttribute('aria-label') || '').trim()
      || [...(el.labels || [])].map((l) => l.textContent).join(' ').trim()
      || (labelled ? labelled.split(' ').map((id) => document.getElementById(id)?.textContent || '').join(' ').trim() : '')
      || ((el.tagName === 'BUTTON' || el.tagName === 'A') ? el.textContent.trim() : '');
    if (!name) problems.push('no accessible name: ' + el.outerHTML.slice(0, 100));
  }
  const parse = (c) => {
    const m = c.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const luminance = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.backgroundImage !== 'none') return null;
      const c = parse(s.backgroundColor);
      if (c && c[3] > 0.99) return c;
    }
    return [255, 255, 255, 1];
  };
  let checked = 0;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || !node.textContent.trim() || el.closest('svg') || !visible(el)) continue;
    if (el.closest('button:disabled, select:disabled, input:disabled')) continue;
    const bg = background(el);
    const fg = parse(getComputedStyle(el).color);
    if (!bg || !fg) continue;
    const mixed = fg.slice(0, 3).map((v, i) => v * fg[3] + bg[i] * (1 - fg[3]));
    const [a, b] = [luminance(mixed), luminance(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const style = getComputedStyle(el);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    checked += 1;
    if (ratio < (large ? 3 : 4.5)) {
      problems.push(`contrast ${ratio.toFixed(2)} for "${node.textContent.trim().slice(0, 40)}" (${style.color} on rgb(${bg.slice(0, 3).join(', ')}))`);
    }
  }
  const root = document.scrollingElement;
  return { problems, checked, overflow: root.scrollWidth - root.clientWidth };
})()
