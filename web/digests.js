// Leadership's weekly digests: the list by week, and one digest with its
// ranked risks and opportunities, charts (server SVG, re-sanitized here),
// and evidence that links to the exact message in its channel. Until the
// insights API exists the pages show an empty state.

import { api } from './api.js';
import { h, mount, icon, labelChip, deptChip, safeSvg, fmt, toast, empty } from './dom.js';
import { pageHeader } from './app.js';

function period(p) {
  if (!p) return '';
  return `${fmt.date(p.from)} – ${fmt.date(p.to)}`;
}

function unavailable(e) {
  return e && (e.status === 404 || e.status === 405 || e.status === 501);
}

export async function showList(ctx, main) {
  document.title = 'Digests · Warroom';
  const runBtn = h('button.btn.btn-primary.btn-sm', { onclick: () => run(ctx, main, runBtn) }, icon('pulse'), 'Run now');
  let list = [];
  let missing = false;
  try {
    const r = await api('/insights/digests');
    list = (r && r.digests) || [];
  } catch (e) {
    if (!unavailable(e)) throw e;
    missing = true;
  }
  list.sort((a, b) => String(b.period?.from).localeCompare(String(a.period?.from)));
  mount(main, pageHeader(h('h1', 'Weekly digests'), h('div.head-actions', missing ? null : runBtn)),
    h('div.page-body',
      h('p.lead', 'Each week the insights job reads what people and agents said across departments and ranks the risks and opportunities no single team sees. Every claim links to its evidence.'),
      list.length ? h('div.digest-list', list.map((d) => h('a.digest-card', { href: `#/digests/${d.id}`, dataset: { digest: d.id } },
        h('div.digest-week', h('span.digest-label', d.label ? 'Week of' : 'Period'), h('strong', period(d.period))),
        h('div.digest-counts',
          h('span.count.risk', h('strong', String(d.counts?.risk ?? 0)), ' risks'),
          h('span.count.opportunity', h('strong', String(d.counts?.opportunity ?? 0)), ' opportunities')),
        h('div.digest-meta', labelChip(d.label || 'internal'), d.redacted ? h('span.chip.redacted', 'Redacted for your clearance') : null,
          h('span.muted', `v${d.version ?? 1} · ${d.created_at ? fmt.ago(d.created_at) : ''}`)))))
        : empty(missing ? 'Digests are not available yet' : 'No digests yet',
          missing ? 'The insights job is not enabled on this server. Digests will appear here when it runs.' : 'The first digest appears after the weekly run, or run it now.')));
}

async function run(ctx, main, btn) {
  btn.disabled = true;
  try {
    await api('/insights/run', { method: 'POST', body: {} });
    toast('Digest run started');
    setTimeout(() => showList(ctx, main).catch(() => {}), 1500);
  } catch (e) {
    toast(e.message, 'error');
    btn.disabled = false;
  }
}

const TREND = { new: '✦ new', growing: '▲ growing', steady: '■ steady', fading: '▼ fading' };

function confidence(c, reason) {
  const pct = Math.round((Number(c) || 0) * 100);
  const fill = h('span.conf-fill');
  fill.style.width = `${pct}%`;
  const title = reason ? `Confidence ${pct}%: ${reason}` : `Confidence ${pct}%`;
  return h('span.confidence', { title }, h('span.conf-bar', fill), h('span.conf-num', `${pct}%`));
}

function evidenceEl(ev) {
  const link = /^#\/c\/[\w-]+\/m\/[\w-]+$/.test(ev.link || '') ? ev.link : `#/c/${ev.channel_id}/m/${ev.message_id}`;
  return h('li.evidence', { dataset: { message: ev.message_id } },
    h('a.evidence-link', { href: link },
      h('div.evidence-meta', h('strong', ev.author_name || ev.author || 'someone'), h('span.muted', ` in #${ev.channel || 'channel'} · ${ev.posted_at ? fmt.full(ev.posted_at) : ''}`), icon('chevron', 'chev')),
      h('div.evidence-excerpt', ev.excerpt || '')),
    ev.citations && ev.citations.length ? h('div.evidence-cites', ev.citations.map((c) =>
      h('span.cite', { title: c.quote || '' }, icon('file'), c.document_path, ' ', labelChip(c.label)))) : null);
}

function insightEl(i) {
  const evidence = h('ol.evidence-list', { hidden: true }, (i.evidence || []).map(evidenceEl));
  const toggle = h('button.citations-toggle', {
    'aria-expanded': 'false',
    onclick: () => {
      evidence.hidden = !evidence.hidden;
      toggle.setAttribute('aria-expanded', String(!evidence.hidden));
      toggle.classList.toggle('open', !evidence.hidden);
    },
  }, icon('book'), `${(i.evidence || []).length} ${(i.evidence || []).length === 1 ? 'piece' : 'pieces'} of evidence`, icon('chevron', 'chev'));
  return h(`article.insight.${i.kind === 'risk' ? 'is-risk' : 'is-opportunity'}`, { dataset: { rank: String(i.rank) } },
    h('div.insight-rank', `#${i.rank}`),
    h('div.insight-main',
      h('div.insight-head', h('span.chip.kind', i.kind === 'risk' ? 'Risk' : 'Opportunity'), h('h3', i.title), h('span.trend', { class: `trend-${i.trend}` }, TREND[i.trend] || i.trend || '')),
      i.why ? h('p.insight-why', h('strong', 'Why it matters: '), i.why) : null,
      h('p.insight-summary', h('strong', 'The facts: '), i.summary),
      h('div.insight-meta', (i.departments || []).map(deptChip), confidence(i.confidence, i.confidence_reason), i.label ? labelChip(i.label) : null),
      i.confidence_reason ? h('p.insight-confidence.muted', i.confidence_reason) : null,
      toggle, evidence));
}

function chart(title, svg) {
  const el = safeSvg(svg);
  if (!el) return null;
  el.setAttribute('role', 'img');
  el.setAttribute('aria-label', title);
  return h('figure.chart', el, h('figcaption', title));
}

export async function showDigest(ctx, main, id) {
  let d;
  try {
    d = await api(`/insights/digests/${encodeURIComponent(id)}`);
  } catch (e) {
    if (!unavailable(e)) throw e;
    mount(main, pageHeader(h('h1', 'Digest')), h('div.page-body', empty('This digest is not available', 'It may not exist, or the insights job is not enabled on this server.', h('a.btn', { href: '#/digests' }, 'All digests'))));
    return;
  }
  document.title = `Digest ${period(d.period)} · Warroom`;
  const insights = (d.insights || []).slice().sort((a, b) => a.rank - b.rank);
  const risks = insights.filter((i) => i.kind === 'risk');
  const opps = insights.filter((i) => i.kind !== 'risk');
  const exp = (fmtName, text) => h('a.btn.btn-sm', { href: `#/digests/${d.id}`, onclick: (e) => { e.preventDefault(); exportDigest(d.id, fmtName); } }, text);
  mount(main,
    pageHeader(h('div.channel-title', h('a.crumb', { href: '#/digests' }, 'Digests'), h('span.crumb-sep', '/'), h('h1', `Week of ${period(d.period)}`), labelChip(d.label || 'internal')),
      h('div.head-actions', exp('html', 'Export HTML'), exp('md', 'Markdown'), exp('json', 'JSON'))),
    h('div.page-body.digest',
      d.redacted ? h('div.notice', icon('shield'), 'Parts of this digest are above your clearance and were left out.') : null,
      h('div.charts', chart('Activity by department', d.charts?.activity_svg), chart('Trend of insights', d.charts?.trend_svg)),
      h('div.digest-cols',
        h('section', h('h2.section-risk', `Risks · ${risks.length}`), risks.length ? risks.map(insightEl) : h('p.muted', 'No risks this week.')),
        h('section', h('h2.section-opp', `Opportunities · ${opps.length}`), opps.length ? opps.map(insightEl) : h('p.muted', 'No opportunities this week.')))));
}

async function exportDigest(id, format) {
  try {
    const token = await import('./api.js').then((m) => m.accessToken());
    const r = await fetch(`/api/v1/insights/digests/${encodeURIComponent(id)}/export?format=${format}`, { headers: { authorization: `Bearer ${token}` } });
    if (!r.ok) throw new Error(`export failed (${r.status})`);
    const blob = await r.blob();
    const a = h('a', { href: URL.createObjectURL(blob), download: `digest-${id}.${format === 'md' ? 'md' : format}` });
    document.body.append(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  } catch (e) {
    toast(e.message, 'error');
  }
}
