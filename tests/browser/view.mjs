// aloe view's pages in headless Chromium, driven by playwright-core. Run by
// tests/aloe/test_view_browser.c, which makes the pages and passes what they
// hold; prints one line per check ("pass: ..." / "FAIL: ...") and, when all
// pass, "browser checks: all passed". Exit status 1 on any failure.
//
//   CHROMIUM=/usr/bin/chromium node tests/browser/view.mjs --run RUN.html
//     --compare CMP.html --trees TREES.html --personas 100 --turns 10
//     --trees-count 3000 --disagreeing N --search WORD --tree ID
//     --shots DIR [--readme docs/img/view.png]
//
// No check depends on timing: a page has as long as the generous timeouts
// below (a liveness cap) to become ready, and every wait is for an event.
import { chromium } from 'playwright-core';
import { statSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { inflateSync } from 'node:zlib';

const { values: a } = parseArgs({
  options: Object.fromEntries(['run', 'compare', 'trees', 'personas', 'turns', 'trees-count', 'disagreeing', 'search',
    'tree', 'shots', 'readme'].map((k) => [k, { type: 'string' }])),
});
const READY_MS = 120000; // liveness cap for a page to load, not a speed bound

let failed = 0;
const some = (errors) => `${errors.length}: ${errors.slice(0, 3).map((e) => e.slice(0, 300)).join(' | ')}`;
function check(ok, what, detail) {
  console.log(`${ok ? 'pass' : 'FAIL'}: ${what}${!ok && detail !== undefined ? ` (${detail})` : ''}`);
  if (!ok) failed++;
}

// ---- a small PNG reader (8-bit RGB/RGBA, not interlaced: what Chromium writes)
function decodePng(buf) {
  let pos = 8, width = 0, height = 0, depth = 0, type = 0;
  const idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos), kind = buf.toString('ascii', pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (kind === 'IHDR') {
      width = data.readUInt32BE(0); height = data.readUInt32BE(4); depth = data[8]; type = data[9];
      if (data[12] !== 0) throw new Error('interlaced PNG');
    } else if (kind === 'IDAT') idat.push(data);
    else if (kind === 'IEND') break;
    pos += 12 + len;
  }
  if (depth !== 8 || (type !== 6 && type !== 2)) throw new Error(`PNG type ${type} depth ${depth}`);
  const bpp = type === 6 ? 4 : 3, stride = width * bpp;
  const raw = inflateSync(Buffer.concat(idat)), px = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)], line = y * (stride + 1) + 1;
    for (let x = 0; x < stride; x++) {
      const l = x >= bpp ? px[y * stride + x - bpp] : 0, u = y > 0 ? px[(y - 1) * stride + x] : 0;
      const ul = x >= bpp && y > 0 ? px[(y - 1) * stride + x - bpp] : 0;
      let v = raw[line + x];
      if (f === 1) v += l;
      else if (f === 2) v += u;
      else if (f === 3) v += (l + u) >> 1;
      else if (f === 4) {
        const p = l + u - ul, pa = Math.abs(p - l), pb = Math.abs(p - u), pc = Math.abs(p - ul);
        v += pa <= pb && pa <= pc ? l : pb <= pc ? u : ul;
      }
      px[y * stride + x] = v & 255;
    }
  }
  return { width, height, bpp, px };
}

function pixels(png, pred) {
  const { width, height, bpp, px } = decodePng(png);
  let n = 0;
  for (let i = 0; i < width * height; i++) if (pred(px[i * bpp], px[i * bpp + 1], px[i * bpp + 2])) n++;
  return n;
}

// ---- pages
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
ctx.setDefaultTimeout(READY_MS); // every wait and action: a liveness cap (CI runs this on one busy core)

async function openPage(file, hash = '') {
  const page = await ctx.newPage();
  const errors = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || /Content.Security.Policy/i.test(m.text())) errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('request', (r) => {
    if (!/^(file|data|about):/.test(r.url())) errors.push(`network request: ${r.url()}`);
  });
  await page.goto(pathToFileURL(file).href + hash);
  await page.waitForSelector('body[data-ready="1"]', { timeout: READY_MS });
  return { page, errors };
}

const title = (page) => page.locator('#detail-title').textContent();
const waitTitle = (page, text) => page.waitForFunction(
  (t) => document.getElementById('detail-title')?.textContent === t, text, { timeout: READY_MS });
const rowIds = (page) => page.$$eval('#list tbody tr[data-i]', (trs) => trs.map((tr) => tr.dataset.id));

async function runPage() {
  const T = Number(a.turns);
  const { page, errors } = await openPage(a.run);
  const ids = await rowIds(page);
  check(ids.length === Number(a.personas), `run page: ${a.personas} persona rows`, ids.length);
  check(await page.locator('#run-summary tbody tr').count() === 1, 'run page: the summary table');
  check(await page.locator('#turn-table tbody tr').count() === T, `run page: AL(k) for ${T} turns`);

  // the chart: a curve through T points, drawn (its colour in the pixels)
  const d = await page.locator('#chart svg #series-0 path').first().getAttribute('d');
  check((d.match(/[ML]/g) || []).length === T, `chart: the AL(k) path has ${T} points`, d);
  const png = await page.locator('#chart svg').screenshot({ path: `${a.shots}/chart.png` });
  const drawn = pixels(png, (r, g, b) => r < 255 || g < 255 || b < 255);
  const curve = pixels(png, (r, g, b) => Math.abs(r - 0) < 70 && Math.abs(g - 114) < 60 && Math.abs(b - 178) < 60 && b - r > 80);
  check(drawn > 2000 && curve > 150, 'chart: pixels drawn in the chart box, the curve in its colour',
    `${drawn} non-white, ${curve} curve-coloured`);

  // sorting by the mean, both ways, missing values last
  const means = async () => (await page.$$eval('#list tbody tr[data-i]', (trs) => trs.map((tr) => tr.cells[5].textContent)))
    .map((t) => (t === '–' ? null : Number(t)));
  const sorted = (v, dir) => v.every((x, i) => i === 0 || x === null || (v[i - 1] !== null && dir * (x - v[i - 1]) >= 0));
  await page.click('#list th[data-key="mean0"]');
  let m = await means();
  check(sorted(m, 1) && m[0] !== m[m.length - 1], 'table sorts by mean, ascending', m.slice(0, 5).join(' '));
  check(await page.getAttribute('#list th[data-key="mean0"]', 'aria-sort') === 'ascending', 'sorted column marked');
  await page.click('#list th[data-key="mean0"]');
  m = await means();
  check(sorted(m, -1), 'table sorts by mean, descending', m.slice(0, 5).join(' '));

  // a click opens that persona's conversation and puts it in the URL
  const order = await rowIds(page);
  await page.locator('#list tbody tr[data-i]').nth(3).click();
  await waitTitle(page, `Persona ${order[3]}`);
  check(true, `a click opens the right conversation (${order[3]})`);
  check(await page.evaluate(() => decodeURIComponent(location.hash)) === `#${order[3]}`, 'the URL names the persona');
  check(await page.locator('#detail .turn').count() === T, `the conversation shows ${T} turns`);
  check(await page.locator('#detail .turn .msg.user').count() === T && await page.locator('#detail .turn .msg.reply').count() === T,
    'each turn: the user message and the reply');
  check(await page.locator('#detail .turn .badge.score, #detail .turn .badge.none').count() === T, 'each turn: its score');

  // keyboard: j/k next/previous persona in the table's order, n/p turns
  await page.keyboard.press('j');
  await waitTitle(page, `Persona ${order[4]}`);
  check(true, 'j opens the next persona');
  await page.keyboard.press('k');
  await waitTitle(page, `Persona ${order[3]}`);
  check(true, 'k opens the previous persona');
  const current = () => page.$eval('#detail .turn.current', (e) => e.dataset.turn).catch(() => null);
  await page.keyboard.press('n');
  await page.keyboard.press('n');
  check(await current() === '2', 'n n: turn 2 is current');
  await page.keyboard.press('p');
  check(await current() === '1', 'p: back to turn 1');

  // re-asked judges are marked, raw judge text is there
  let reasked = 0, seenScript = false;
  for (let i = 0; i < 12 && (!reasked || !seenScript); i++) {
    reasked += await page.locator('#detail .badge.reask').count();
    seenScript ||= (await page.$$eval('#detail .msg.reply', (es) => es.map((e) => e.textContent)))
      .some((t) => t.includes('</script><script>window.__pwned=1</script><img src=x'));
    const before = await title(page);
    await page.keyboard.press('j');
    await page.waitForFunction((t) => document.getElementById('detail-title')?.textContent !== t, before,
      { timeout: READY_MS });
  }
  check(reasked > 0, 're-asked judge turns are marked');
  check(await page.locator('#detail details.judge pre').count() >= T, 'the judge’s raw answers are in the page');
  // the injected markup is text: nothing ran, no element was made
  check(seenScript, 'a reply holding <script> shows it as text');
  check(await page.evaluate(() => window.__pwned) === undefined, 'the injected script did not run');
  check(await page.locator('#detail img, #detail script').count() === 0, 'no element came from a reply');

  // printing: controls hidden, the open conversation instead of the table
  await page.emulateMedia({ media: 'print' });
  check(await page.$eval('.controls', (e) => getComputedStyle(e).display) === 'none', 'print: controls hidden');
  check(await page.$eval('#list-pane', (e) => getComputedStyle(e).display) === 'none', 'print: the conversation, not the table');
  await page.emulateMedia({ media: 'screen' });
  check(errors.length === 0, 'run page: no console errors', some(errors));

  // a link to one persona and turn opens it
  const target = ids[37 % ids.length];
  const linked = await openPage(a.run, `#${encodeURIComponent(target)}/t4`);
  await waitTitle(linked.page, `Persona ${target}`);
  check(true, `the fragment #${target}/t4 opens that persona`);
  check(await linked.page.$eval('#detail .turn.current', (e) => e.dataset.turn) === '4', 'and turn 4');
  check(await linked.page.$eval('#list tbody tr.selected', (e) => e.dataset.id) === target, 'its row is selected');
  check(linked.errors.length === 0, 'linked page: no console errors', some(linked.errors));

  if (a.readme) { // the README's picture: a conversation next to the table
    await linked.page.setViewportSize({ width: 1200, height: 720 });
    await linked.page.evaluate(() => {
      const list = document.getElementById('list-scroll'), row = list.querySelector('tr.selected');
      list.scrollTop = row.offsetTop - 6 * row.offsetHeight;
      document.getElementById('detail-pane').scrollTop = 0;
      window.scrollTo(0, document.getElementById('browse').offsetTop - 8);
    });
    await linked.page.screenshot({ path: a.readme, type: 'png' });
    const kb = statSync(a.readme).size / 1024;
    check(kb < 200, `README screenshot written (${kb.toFixed(0)} KiB)`);
  }
  await linked.page.close();
  await page.close();
}

async function comparePage() {
  const { page, errors } = await openPage(a.compare);
  check(await page.locator('#chart svg #series-1 path').count() > 0, 'compare page: both curves in the chart');
  const turns = await page.locator('#turn-table tbody tr').count();
  check(await page.locator('.paired-table tbody tr').count() === turns + 3, 'paired differences: each turn, AVG, IR, N-IR');
  check(await page.locator('#paired svg.forest circle').count() > 0, 'paired differences: drawn per turn');
  await page.locator('#list tbody tr[data-i]').first().click();
  await page.waitForSelector('#detail .turn');
  check(await page.locator('#detail .turn').first().locator('.col').count() === 2, 'a persona: the two runs side by side');
  const second = await page.locator('#detail .turn').first().locator('.col[data-run="1"] .msg.reply').textContent();
  check(second.startsWith('A plainer reply'), 'the second column is the second run’s reply', second);
  check(errors.length === 0, 'compare page: no console errors', some(errors));
  await page.close();
}

async function treesPage() {
  const n = Number(a['trees-count']);
  const t0 = Date.now();
  const { page, errors } = await openPage(a.trees);
  console.log(`info: the ${n}-tree page was ready after ${Date.now() - t0} ms (not asserted)`);
  const count = () => page.textContent('#count');
  check(await count() === `${n} of ${n} trees`, `trees page: ${n} trees listed`, await count());
  const rendered = () => page.locator('#list tbody tr[data-i]').count();
  const first = await rendered();
  check(first > 0 && first < n, 'rows are rendered lazily', first);
  await page.$eval('#list-scroll', (e) => { e.scrollTop = e.scrollHeight; });
  await page.waitForFunction((k) => document.querySelectorAll('#list tbody tr[data-i]').length > k, first, { timeout: READY_MS });
  check(true, 'scrolling renders more rows');

  await page.check('#disagree-only');
  check(await count() === `${a.disagreeing} of ${n} trees`, 'filter: disagreements only', await count());
  const dis = await page.$$eval('#list tbody tr[data-i]', (trs) => trs.map((tr) => Number(tr.cells[5].textContent)));
  check(dis.length > 0 && dis.every((x) => x > 0), 'every listed tree has a disagreement');
  await page.uncheck('#disagree-only');
  await page.fill('#search', a.search);
  check(await count() === `1 of ${n} trees`, `search "${a.search}" finds one tree`, await count());
  await page.locator('#list tbody tr[data-i]').first().click();
  await waitTitle(page, `Tree ${a.tree}`);
  check(true, `a click opens ${a.tree}`);
  const k = Number(a.tree.replace(/\D/g, ''));
  const turns = await page.locator('#detail .turn').count();
  check(turns === 10, 'the tree’s 10 turns', turns);
  const disTurns = await page.$$eval('#detail .turn.disagree', (es) => es.map((e) => e.dataset.turn));
  check(JSON.stringify(disTurns) === JSON.stringify(k % 7 === 0 ? [String(k % 10 + 1)] : []), 'the disagreement is highlighted', disTurns.join(','));
  check(await page.locator('#detail .badge.continued').count() === 10, 'each turn marks the branch that continued');
  check(await page.locator('#detail .msg.hint').count() === 10, 'each turn shows the inferred persona');
  check(await page.locator('#detail .judge-line').count() === 20, 'each turn: the judge in both orders');
  check(errors.length === 0, 'trees page: no console errors', some(errors));
  await page.close();

  const last = `conv-${String(n - 1).padStart(6, '0')}`;
  const linked = await openPage(a.trees, `#${last}`);
  await waitTitle(linked.page, `Tree ${last}`);
  check(await linked.page.$eval('#list tbody tr.selected', (e) => e.dataset.id) === last, `#${last}: the last tree, its row rendered and selected`);
  check(linked.errors.length === 0, 'linked trees page: no console errors', some(linked.errors));
  await linked.page.close();
}

try {
  await runPage();
  await comparePage();
  await treesPage();
} catch (e) {
  check(false, 'the checks ran to the end', e.stack || e);
} finally {
  await browser.close();
}
console.log(failed ? `browser checks: ${failed} failed` : 'browser checks: all passed');
process.exit(failed ? 1 : 0);
