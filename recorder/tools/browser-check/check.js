// Plays Ogg Opus files in headless Chromium (playwright-core) and Firefox
// (puppeteer-core over WebDriver BiDi): decodeAudioData (channels,
// duration, optionally the separation of two tones between the channels)
// and an <audio> element that must load and advance while playing.
//
//   npm install && node check.js FILE.opus[:F_LEFT:F_RIGHT] ...
//
// F_LEFT/F_RIGHT: tone frequencies expected in the left/right channel;
// the report gives each tone's level in the other channel (dB).
const fs = require('fs');
const os = require('os');
const path = require('path');

const files = process.argv.slice(2).map((arg) => {
  const [file, fl, fr] = arg.split(':');
  return { name: path.basename(file), data: fs.readFileSync(file).toString('base64'),
    tones: fl ? [Number(fl), Number(fr)] : null };
});
if (files.length === 0) {
  console.error('usage: node check.js FILE.opus[:F_LEFT:F_RIGHT] ...');
  process.exit(2);
}

const page = `<!doctype html><pre id=out>running</pre><script>
const files = ${JSON.stringify(files)};
function buf(s) { const b = atob(s), a = new Uint8Array(b.length); for (let i = 0; i < b.length; i++) a[i] = b.charCodeAt(i); return a.buffer; }
function power(x, f, rate) { const c = 2 * Math.cos(2 * Math.PI * f / rate); let s1 = 0, s2 = 0;
  for (const v of x) { const s0 = v + c * s1 - s2; s2 = s1; s1 = s0; } return (s1 * s1 + s2 * s2 - c * s1 * s2) / (x.length * x.length); }
const db = (a, b) => (10 * Math.log10(a / b)).toFixed(1);
(async () => {
  const out = [];
  for (const f of files) {
    try {
      const b = await new OfflineAudioContext(2, 48000, 48000).decodeAudioData(buf(f.data));
      let line = f.name + ': decoded ' + b.numberOfChannels + ' ch, ' + b.duration.toFixed(3) + ' s';
      if (f.tones && b.numberOfChannels === 2) {
        const [L, R] = [b.getChannelData(0), b.getChannelData(1)], [fl, fr] = f.tones;
        line += '; left tone in right ' + db(power(R, fl, b.sampleRate), power(L, fl, b.sampleRate)) +
          ' dB, right tone in left ' + db(power(L, fr, b.sampleRate), power(R, fr, b.sampleRate)) + ' dB';
      }
      out.push(line);
    } catch (e) { out.push(f.name + ': decodeAudioData FAILED ' + e); }
    out.push(await new Promise((done) => {
      const a = new Audio();
      a.onerror = () => done(f.name + ': <audio> FAILED, error ' + (a.error && a.error.code));
      a.onloadedmetadata = async () => {
        let line = f.name + ': <audio> ' + a.duration.toFixed(3) + ' s';
        try { a.muted = true; await a.play(); await new Promise((r) => setTimeout(r, 800));
          line += ', played to ' + a.currentTime.toFixed(2) + ' s'; } catch (e) { line += ', play() FAILED ' + e; }
        done(line);
      };
      a.src = 'data:audio/ogg;codecs=opus;base64,' + f.data;
    }));
  }
  document.getElementById('out').textContent = out.join('\\n');
})();
</script>`;

(async () => {
  const html = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'browser-check-')), 'check.html');
  fs.writeFileSync(html, page);
  const url = 'file://' + html;
  const ready = () => document.getElementById('out').textContent !== 'running';

  const { chromium } = require('playwright-core');
  const c = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--autoplay-policy=no-user-gesture-required'] });
  const cp = await c.newPage();
  await cp.goto(url);
  await cp.waitForFunction(ready, null, { timeout: 60000 });
  console.log('== Chromium ' + c.version());
  console.log(await cp.textContent('#out'));
  await c.close();

  const puppeteer = require('puppeteer-core');
  const f = await puppeteer.launch({ browser: 'firefox', headless: true,
    executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
    extraPrefsFirefox: { 'media.autoplay.default': 0, 'media.autoplay.blocking_policy': 0 } });
  const fp = await f.newPage();
  await fp.goto(url);
  await fp.waitForFunction(ready, { timeout: 60000 });
  console.log('== ' + (await f.version()));
  console.log(await fp.$eval('#out', (e) => e.textContent));
  await f.close();
})().catch((e) => { console.error(e); process.exit(1); });
