// otpgate sign-in page: the interface only. Talking to otpgate (retries, backoff, Idempotency-Key,
// typed errors) is the `otpgate` package's job, which otpgate serves beside this file as
// /otpgate.js (clients/js/ in the repository). Plain ES modules, no build step; runs under a CSP
// without inline script or style, so everything visual is done by toggling `hidden`, classes and
// attributes.
import { OtpgateClient, OtpgateError, newIdempotencyKey } from './otpgate.js';

// ---------------------------------------------------------------------------------------------
// Configuration (from <meta> tags, so a static host can change them without touching this file)

function meta(name) {
  const el = document.querySelector('meta[name="' + name + '"]');
  return el ? (el.getAttribute('content') || '').trim() : '';
}

const API_BASE = meta('otpgate-api-base').replace(/\/+$/, '');
const CODE_LENGTH = (function () {
  const n = parseInt(meta('otpgate-code-length'), 10);
  return n >= 4 && n <= 10 ? n : 6;
})();
const SESSION_KEY = 'otpgate.session';

// Signing in for an app (OpenID Connect): otpgate serves this page at its authorization endpoint
// with the request, a CSRF token and the app's name in <meta> tags. The code is then checked at
// the login endpoint instead of /v1/verifications/check (the same check, plus the login session),
// and the browser goes back to the app with what it answers.
const OIDC = (function () {
  const login = meta('otpgate-oidc-login');
  if (!login) return null;
  return {
    login: login,
    request: meta('otpgate-oidc-request'),
    csrf: meta('otpgate-oidc-csrf'),
    client: meta('otpgate-oidc-client'),
    hint: meta('otpgate-login-hint'),
  };
})();

// Common countries: ISO code, name, dial code, example national format. `trunk` is the national
// prefix people type in front of a national number (stripped when composing E.164); `trunkLen`
// limits stripping to numbers of that many digits (where the trunk digit can also start a number).
const COUNTRIES = [
  ['AR', 'Argentina', '54', '9 11 2345-6789', { trunk: '0' }],
  ['AU', 'Australia', '61', '0412 345 678'],
  ['AT', 'Austria', '43', '0664 123456'],
  ['BD', 'Bangladesh', '880', '01812-345678'],
  ['BE', 'Belgium', '32', '0470 12 34 56'],
  ['BR', 'Brazil', '55', '(11) 96123-4567'],
  ['CA', 'Canada', '1', '(506) 234-5678', { trunk: '1', trunkLen: 11 }],
  ['CL', 'Chile', '56', '9 6123 4567'],
  ['CN', 'China', '86', '131 2345 6789'],
  ['CO', 'Colombia', '57', '321 1234567'],
  ['CZ', 'Czechia', '420', '601 123 456'],
  ['DK', 'Denmark', '45', '32 12 34 56'],
  ['EG', 'Egypt', '20', '0100 123 4567'],
  ['FI', 'Finland', '358', '041 2345678'],
  ['FR', 'France', '33', '06 12 34 56 78'],
  ['DE', 'Germany', '49', '01512 3456789'],
  ['GH', 'Ghana', '233', '023 123 4567'],
  ['GR', 'Greece', '30', '691 234 5678', { trunk: '' }],
  ['HK', 'Hong Kong', '852', '5123 4567', { trunk: '' }],
  ['IN', 'India', '91', '081234 56789'],
  ['ID', 'Indonesia', '62', '0812-345-678'],
  ['IE', 'Ireland', '353', '085 012 3456'],
  ['IL', 'Israel', '972', '050-234-5678'],
  ['IT', 'Italy', '39', '312 345 6789', { trunk: '' }],
  ['JP', 'Japan', '81', '090-1234-5678'],
  ['KE', 'Kenya', '254', '0712 123456'],
  ['MY', 'Malaysia', '60', '012-345 6789'],
  ['MX', 'Mexico', '52', '222 123 4567', { trunk: '' }],
  ['MA', 'Morocco', '212', '0650-123456'],
  ['NL', 'Netherlands', '31', '06 12345678'],
  ['NZ', 'New Zealand', '64', '021 123 4567'],
  ['NG', 'Nigeria', '234', '0802 123 4567'],
  ['NO', 'Norway', '47', '406 12 345', { trunk: '' }],
  ['PK', 'Pakistan', '92', '0301 2345678'],
  ['PE', 'Peru', '51', '912 345 678'],
  ['PH', 'Philippines', '63', '0905 123 4567'],
  ['PL', 'Poland', '48', '512 345 678', { trunk: '' }],
  ['PT', 'Portugal', '351', '912 345 678', { trunk: '' }],
  ['RU', 'Russia', '7', '8 (912) 345-67-89', { trunk: '8', trunkLen: 11 }],
  ['SA', 'Saudi Arabia', '966', '051 234 5678'],
  ['SG', 'Singapore', '65', '8123 4567', { trunk: '' }],
  ['ZA', 'South Africa', '27', '071 123 4567'],
  ['KR', 'South Korea', '82', '010-2000-0000'],
  ['ES', 'Spain', '34', '612 34 56 78', { trunk: '' }],
  ['LK', 'Sri Lanka', '94', '071 234 5678'],
  ['SE', 'Sweden', '46', '070-123 45 67'],
  ['CH', 'Switzerland', '41', '078 123 45 67'],
  ['TW', 'Taiwan', '886', '0912 345 678'],
  ['TH', 'Thailand', '66', '081 234 5678'],
  ['TR', 'Türkiye', '90', '0501 234 56 78'],
  ['UA', 'Ukraine', '380', '050 123 4567'],
  ['AE', 'United Arab Emirates', '971', '050 123 4567'],
  ['GB', 'United Kingdom', '44', '07400 123456'],
  ['US', 'United States', '1', '(201) 555-0123', { trunk: '1', trunkLen: 11 }],
  ['VN', 'Vietnam', '84', '091 234 56 78'],
].map(function (c) {
  const opts = c[4] || {};
  return {
    iso: c[0], name: c[1], dial: c[2], example: c[3],
    trunk: opts.trunk === undefined ? '0' : opts.trunk, trunkLen: opts.trunkLen || 0,
  };
});

// ---------------------------------------------------------------------------------------------
// Elements

const $ = function (id) { return document.getElementById(id); };
const el = {
  status: $('status'),
  offlineBanner: $('offline-banner'), offlineDetail: $('offline-detail'), offlineRetry: $('offline-retry'),
  demoBanner: $('demo-banner'), demoCode: $('demo-code'), demoFill: $('demo-fill'),
  phoneForm: $('phone-form'), country: $('country'), dialCode: $('dial-code'), phone: $('phone'),
  phoneHint: $('phone-hint'), phoneError: $('phone-error'), phoneAlert: $('phone-alert'), sendBtn: $('send-btn'),
  codeForm: $('code-form'), sentTo: $('sent-to'), codeLabel: $('code-label'), code: $('code'),
  codeExpiry: $('code-expiry'), codeError: $('code-error'), codeAlert: $('code-alert'),
  verifyBtn: $('verify-btn'), resendBtn: $('resend-btn'), changeNumber: $('change-number'),
  title: $('title'), titleText: $('title-text'), titleIcon: $('title-icon'), signedIn: $('signed-in'),
  mePhone: $('me-phone'), meId: $('me-id'), meIdRow: $('me-id-row'), signedAlert: $('signed-alert'),
  signoutBtn: $('signout-btn'),
};

const FIELDS = {
  phone: { input: el.phone, error: el.phoneError, hint: 'phone-hint' },
  code: { input: el.code, error: el.codeError, hint: 'code-expiry' },
};

// ---------------------------------------------------------------------------------------------
// State

const state = {
  step: 'phone',        // 'phone' | 'code' | 'signed-in'
  phone: '',            // E.164 of the number being verified
  op: null,             // AbortController of the operation in flight (send, resend, check, …)
  webOtp: null,         // AbortController of the pending WebOTP request
  lastPasted: '',       // code auto-submitted from paste / WebOTP, to avoid resubmitting it
  session: null,        // { access_token, refresh_token, … }
};

// ---------------------------------------------------------------------------------------------
// Small helpers

function announce(text) {
  // Clear first so that the same sentence twice in a row is still announced.
  el.status.textContent = '';
  window.setTimeout(function () { el.status.textContent = text; }, 50);
}

function fmtDuration(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  const m = Math.floor(s / 60);
  return m + ':' + String(s % 60).padStart(2, '0');
}

function plural(n, one, many) { return n + ' ' + (n === 1 ? one : many); }

function sleep(ms, signal) {
  return new Promise(function (resolve, reject) {
    const t = window.setTimeout(done, ms);
    function done() { cleanup(); resolve(); }
    function abort() { cleanup(); reject(signal.reason); }
    function cleanup() { window.clearTimeout(t); if (signal) signal.removeEventListener('abort', abort); }
    if (signal) {
      if (signal.aborted) { abort(); return; }
      signal.addEventListener('abort', abort);
    }
  });
}

// Operations are cancelled with AbortController.abort(), whose reason is an AbortError.
function isAbort(e) { return e && e.name === 'AbortError'; }

// ---------------------------------------------------------------------------------------------
// Countdowns: one ticker for all of them, driven by absolute deadlines so that a throttled
// background tab shows the right time when it comes back.

const timers = new Map(); // name -> { deadline, tick(secondsLeft), done() }

function startTimer(name, seconds, tick, done) {
  timers.set(name, { deadline: Date.now() + seconds * 1000, tick: tick, done: done });
  tick(seconds);
  ensureTicker();
}
function stopTimer(name) { timers.delete(name); }
function timerRunning(name) { return timers.has(name); }

let ticker = 0;
function ensureTicker() {
  if (ticker) return;
  ticker = window.setInterval(function () {
    const now = Date.now();
    timers.forEach(function (t, name) {
      const left = (t.deadline - now) / 1000;
      if (left <= 0) {
        timers.delete(name);
        t.tick(0);
        if (t.done) t.done();
      } else {
        t.tick(left);
      }
    });
    if (timers.size === 0) { window.clearInterval(ticker); ticker = 0; }
  }, 250);
}

// ---------------------------------------------------------------------------------------------
// Buttons: loading state and temporary blocks

function labelOf(btn) { return btn.querySelector('.btn-label') || btn; }

function setLabel(btn, text) { labelOf(btn).textContent = text; }

function baseLabel(btn) {
  if (!btn.dataset.label) btn.dataset.label = labelOf(btn).textContent;
  return btn.dataset.label;
}

function setBusy(btn, busy, text) {
  baseLabel(btn);
  if (busy) {
    btn.disabled = true;
    btn.setAttribute('aria-busy', 'true');
    setLabel(btn, text || btn.dataset.busyLabel || 'Please wait…');
  } else {
    btn.removeAttribute('aria-busy');
    refreshButton(btn);
  }
}

function isBusy(btn) { return btn.getAttribute('aria-busy') === 'true'; }

// A button's label and enabled state when it is not busy: blocked by retry_after, by the resend
// cooldown, or free.
function refreshButton(btn) {
  if (isBusy(btn)) return;
  const block = btn.dataset.blockedLabel;
  if (block) {
    btn.disabled = true;
    setLabel(btn, block);
  } else {
    btn.disabled = false;
    setLabel(btn, baseLabel(btn));
  }
}

// ---------------------------------------------------------------------------------------------
// Errors

function clearFieldError(name) {
  const f = FIELDS[name];
  f.error.textContent = '';
  f.error.hidden = true;
  f.input.removeAttribute('aria-invalid');
  f.input.setAttribute('aria-describedby', f.hint);
}

function showFieldError(name, message) {
  const f = FIELDS[name];
  f.error.textContent = message;
  f.error.hidden = false;
  f.input.setAttribute('aria-invalid', 'true');
  f.input.setAttribute('aria-describedby', f.error.id + ' ' + f.hint);
  f.input.focus();
  if (typeof f.input.select === 'function') f.input.select();
}

function alertFor(step) {
  return step === 'phone' ? el.phoneAlert : step === 'code' ? el.codeAlert : el.signedAlert;
}

function clearAlert(box) {
  box.textContent = '';
  box.hidden = true;
  stopTimer('retry:' + box.id);
}

function showAlert(box, message) {
  clearAlert(box);
  const p = document.createElement('p');
  p.className = 'alert-message';
  p.textContent = message;
  box.appendChild(p);
  box.hidden = false;
  return box;
}

function clearErrors() {
  clearFieldError('phone');
  clearFieldError('code');
  [el.phoneAlert, el.codeAlert, el.signedAlert].forEach(clearAlert);
}

// An OtpgateError: the message goes next to the field the server names (which gets focus), or in
// the step's alert. With retry_after, `btn` stays disabled and a countdown runs until it may be
// used again.
function showApiError(err, btn) {
  let message = err.message || 'Something went wrong. Please try again.';
  if (err.code === 'invalid_code' && typeof err.attemptsLeft === 'number' && !/attempt/i.test(message)) {
    message += ' ' + plural(err.attemptsLeft, 'attempt', 'attempts') + ' left.';
  }
  const field = err.field && FIELDS[err.field] && !FIELDS[err.field].input.closest('[hidden]') ? err.field : null;
  let box;
  if (field) {
    showFieldError(field, message);
    box = FIELDS[field].error;
  } else {
    box = showAlert(alertFor(state.step), message);
    // Keep keyboard users where they can act: the step's main field.
    const main = state.step === 'phone' ? el.phone : state.step === 'code' ? el.code : null;
    if (main) main.focus();
  }
  if (err.retryAfter > 0 && btn) blockButton(btn, err.retryAfter, box);
  return box;
}

// Disable `btn` for `seconds`, with the countdown in its label and in `box` (an error element).
function blockButton(btn, seconds, box) {
  const name = 'block:' + btn.id;
  const line = document.createElement('p');
  line.className = 'countdown retry-countdown';
  if (box) box.appendChild(line);
  startTimer(name, seconds, function (left) {
    btn.dataset.blockedLabel = 'Try again in ' + fmtDuration(left);
    refreshButton(btn);
    line.textContent = 'You can try again in ' + fmtDuration(left) + '.';
  }, function () {
    delete btn.dataset.blockedLabel;
    refreshButton(btn);
    const current = line.isConnected;
    line.remove();
    if (box && current) {
      if (box.classList.contains('field-error')) {
        const name = box.id === 'phone-error' ? 'phone' : 'code';
        clearFieldError(name);
      } else {
        clearAlert(box);
      }
    }
    if (btn === el.resendBtn) updateResendButton();
    announce('You can try again now.');
  });
}

function unblockAll() {
  [el.sendBtn, el.verifyBtn, el.resendBtn].forEach(function (btn) {
    stopTimer('block:' + btn.id);
    delete btn.dataset.blockedLabel;
    refreshButton(btn);
  });
}

// ---------------------------------------------------------------------------------------------
// Network: the client does the requests and their retries; the page waits for the browser to be
// online before a request, and shows the client's retries.

// For an app's sign-in, the check goes to the login endpoint with the request and the CSRF
// token, and with cookies (the login session is otpgate's own first-party cookie).
function oidcFetch(url, init) {
  const isCheck = init && init.method === 'POST' && /\/v1\/verifications\/check$/.test(String(url));
  if (!OIDC || !isCheck) return window.fetch(url, init);
  const body = JSON.parse(init.body);
  body.authorization = OIDC.request;
  body.csrf_token = OIDC.csrf;
  return window.fetch(API_BASE + OIDC.login, Object.assign({}, init, {
    body: JSON.stringify(body), credentials: 'same-origin',
  }));
}

const client = new OtpgateClient({ baseUrl: API_BASE, fetch: OIDC ? oidcFetch : undefined });

const online = {
  waiters: new Set(),
  wake: function () { this.waiters.forEach(function (w) { w(); }); this.waiters.clear(); },
};
window.addEventListener('online', function () {
  // Waiting requests go now (and show the banner again if that fails); idle pages just hide it.
  if (online.waiters.size) online.wake(); else hideOffline();
});
window.addEventListener('offline', function () { showOffline(null); });
el.offlineRetry.addEventListener('click', function () { online.wake(); });

// `secondsLeft`: the client's wait before its next try; null: waiting for the browser to be online.
function showOffline(secondsLeft) {
  el.offlineBanner.hidden = false;
  el.offlineRetry.hidden = secondsLeft != null;
  el.offlineDetail.textContent = secondsLeft == null
    ? "We'll try again as soon as you're back online."
    : 'Trying again in ' + Math.max(1, Math.ceil(secondsLeft)) + ' s…';
}
function hideOffline(silent) {
  if (!el.offlineBanner.hidden && !silent) announce('Back online.');
  el.offlineBanner.hidden = true;
  stopTimer('offline');
}

// Resolves when the browser is back online (or "Retry now" is pressed).
function waitForOnline(signal) {
  showOffline(null);
  announce("You're offline. We'll try again when you're back online.");
  return new Promise(function (resolve, reject) {
    function finish() {
      if (signal) signal.removeEventListener('abort', onAbort);
      resolve();
    }
    function onAbort() {
      online.waiters.delete(finish);
      reject(signal.reason);
    }
    if (signal) {
      if (signal.aborted) { onAbort(); return; }
      signal.addEventListener('abort', onAbort);
    }
    online.waiters.add(finish);
  });
}

function isNetwork(e) {
  return e instanceof OtpgateError && (e.code === 'network_error' || e.code === 'timeout');
}

// Runs `call(options)`, one call of the client, for an interface operation: while the browser is
// offline it first waits for the connection (nothing is sent in vain), and the client's retries
// show as a countdown. `repeat`: the call may run again, as the same logical operation, when
// it failed because the browser went offline (a send keeps its Idempotency-Key for that).
async function request(call, opts) {
  const onRetry = function (info) {
    if (opts.onWaiting) opts.onWaiting();
    if (info.error.code === 'network_error' || info.error.code === 'timeout') {
      startTimer('offline', info.delayMs / 1000, showOffline, null);
    }
  };
  for (;;) {
    if (navigator.onLine === false) {
      if (opts.onWaiting) opts.onWaiting();
      await waitForOnline(opts.signal);
      if (opts.onResumed) opts.onResumed();
    }
    try {
      const result = await call({ signal: opts.signal, onRetry: onRetry });
      hideOffline();
      return result;
    } catch (e) {
      if (isAbort(e)) throw e;
      if (!(opts.repeat && isNetwork(e) && navigator.onLine === false)) {
        // The step's alert says what went wrong.
        hideOffline(true);
        throw e;
      }
    }
  }
}

function newOp() {
  if (state.op) state.op.abort();
  state.op = new AbortController();
  return state.op;
}

// ---------------------------------------------------------------------------------------------
// Phone step

function currentCountry() {
  return COUNTRIES.find(function (c) { return c.iso === el.country.value; }) || COUNTRIES[0];
}

function guessCountry() {
  const langs = (navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || '']);
  for (const l of langs) {
    const m = /-([A-Za-z]{2})\b/.exec(l || '');
    if (m && COUNTRIES.some(function (c) { return c.iso === m[1].toUpperCase(); })) return m[1].toUpperCase();
  }
  return 'US';
}

function fillCountries() {
  const frag = document.createDocumentFragment();
  COUNTRIES.forEach(function (c) {
    const o = document.createElement('option');
    o.value = c.iso;
    o.textContent = c.name + ' (+' + c.dial + ')';
    frag.appendChild(o);
  });
  el.country.appendChild(frag);
  el.country.value = guessCountry();
  onCountryChange();
}

function onCountryChange() {
  const c = currentCountry();
  el.dialCode.textContent = '+' + c.dial;
  el.phone.placeholder = c.example;
  el.phoneHint.textContent = 'Example: ' + c.example + ' — or the full number starting with +';
  onPhoneInput();
}

function onPhoneInput() {
  el.dialCode.parentElement.classList.toggle('international', /^\s*(\+|00)/.test(el.phone.value));
}

// A different number may not be limited at all: let the server decide again.
function onPhoneEdited() {
  if (el.phone.getAttribute('aria-invalid') === 'true') clearFieldError('phone');
  if (timerRunning('block:' + el.sendBtn.id)) {
    stopTimer('block:' + el.sendBtn.id);
    delete el.sendBtn.dataset.blockedLabel;
    refreshButton(el.sendBtn);
    clearAlert(el.phoneAlert);
    clearFieldError('phone');
  }
}

// E.164 from the country and what was typed; null (with a reason) if it clearly is not a number.
// The server does the real validation.
function composePhone(raw) {
  const value = raw.trim();
  if (!value) return { error: 'Enter your phone number.' };
  if (/[^0-9\s()+.\-]/.test(value)) {
    return { error: 'Use digits only (spaces, dashes and brackets are fine).' };
  }
  const digits = value.replace(/\D/g, '');
  if (!digits) return { error: 'Enter your phone number.' };
  if (/^\+/.test(value)) return { e164: '+' + digits };
  if (/^00/.test(digits)) return { e164: '+' + digits.slice(2) };
  const c = currentCountry();
  let national = digits;
  if (c.trunk && national.startsWith(c.trunk) && (!c.trunkLen || national.length === c.trunkLen)) {
    national = national.slice(c.trunk.length);
  }
  return { e164: '+' + c.dial + national };
}

async function onSendSubmit(ev) {
  ev.preventDefault();
  if (isBusy(el.sendBtn) || el.sendBtn.disabled) return;
  clearErrors();
  const composed = composePhone(el.phone.value);
  if (composed.error) { showFieldError('phone', composed.error); return; }
  await sendCode(composed.e164, el.sendBtn, 'Sending…');
}

async function onResend() {
  if (isBusy(el.resendBtn) || el.resendBtn.disabled) return;
  clearErrors();
  await sendCode(state.phone, el.resendBtn, 'Sending…');
}

// POST /v1/verifications, for a first send (from the phone step) or a resend.
async function sendCode(e164, btn, busyLabel) {
  const op = newOp();
  const send = {
    channel: 'sms',
    locale: document.documentElement.lang || navigator.language || 'en',
    // One logical send, even when it has to start over after the browser went offline.
    idempotencyKey: newIdempotencyKey(),
  };
  setBusy(btn, true, busyLabel);
  try {
    const v = await request(function (options) {
      return client.send(e164, Object.assign({}, send, options));
    }, {
      signal: op.signal,
      repeat: true,
      onWaiting: function () { setLabel(btn, 'Waiting for connection…'); },
      onResumed: function () { setLabel(btn, busyLabel); },
    });
    setBusy(btn, false);
    const resend = state.step === 'code';
    state.phone = e164;
    el.sentTo.textContent = e164;
    showCodeStep(v);
    announce(resend ? 'We sent a new code to ' + e164 + '.' : 'Code sent to ' + e164 + '.');
    checkDemoInbox(e164, op.signal);
  } catch (e) {
    if (isAbort(e)) return;
    setBusy(btn, false);
    if (e instanceof OtpgateError) {
      if (e.code === 'rate_limited' && btn === el.resendBtn) stopTimer('resend');
      showApiError(e, btn);
    } else {
      showAlert(alertFor(state.step), 'Something went wrong. Please try again.');
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Code step

function showCodeStep(v) {
  setStep('code');
  el.demoBanner.hidden = true;
  el.code.value = '';
  state.lastPasted = '';
  const expiresIn = typeof v.expires_in === 'number' ? v.expires_in : null;
  if (expiresIn !== null) {
    el.codeExpiry.classList.remove('expired');
    startTimer('expiry', expiresIn, function (left) {
      el.codeExpiry.textContent = 'The code expires in ' + fmtDuration(left) + '.';
    }, function () {
      el.codeExpiry.textContent = 'This code has expired. Request a new one.';
      el.codeExpiry.classList.add('expired');
      announce('The code has expired. Request a new one.');
      stopTimer('resend');
      updateResendButton();
    });
  } else {
    el.codeExpiry.textContent = '';
  }
  const resendIn = typeof v.resend_in === 'number' ? v.resend_in : 0;
  if (resendIn > 0) {
    startTimer('resend', resendIn, updateResendButton, function () {
      updateResendButton();
      announce('You can request a new code now.');
    });
  } else {
    stopTimer('resend');
    updateResendButton();
  }
  el.code.focus();
  startWebOtp();
}

function updateResendButton() {
  const btn = el.resendBtn;
  const t = timers.get('resend');
  if (btn.dataset.blockedLabel && timerRunning('block:' + btn.id)) { refreshButton(btn); return; }
  if (t) {
    btn.dataset.blockedLabel = 'Resend code in ' + fmtDuration((t.deadline - Date.now()) / 1000);
  } else {
    delete btn.dataset.blockedLabel;
  }
  refreshButton(btn);
}

// Zeros of the digit blocks people may type instead of ASCII (full-width, Arabic-Indic,
// extended Arabic-Indic, Devanagari, Bengali): mapped to ASCII, everything else dropped.
const DIGIT_ZEROS = [0xff10, 0x0660, 0x06f0, 0x0966, 0x09e6];

function normaliseCode(value) {
  let out = '';
  for (const ch of value) {
    const cp = ch.codePointAt(0);
    if (cp >= 0x30 && cp <= 0x39) { out += ch; continue; }
    const zero = DIGIT_ZEROS.find(function (z) { return cp >= z && cp <= z + 9; });
    if (zero !== undefined) out += String(cp - zero);
  }
  return out.slice(0, CODE_LENGTH);
}

function onCodeInput(ev) {
  const clean = normaliseCode(el.code.value);
  if (clean !== el.code.value) el.code.value = clean;
  if (el.code.getAttribute('aria-invalid') === 'true') clearFieldError('code');
  // Pasted or autofilled codes are submitted at once; typed ones wait for Enter.
  const type = ev && ev.inputType;
  const autofilled = type === 'insertFromPaste' || type === 'insertReplacementText' || type === undefined;
  if (autofilled && clean.length === CODE_LENGTH && clean !== state.lastPasted) {
    state.lastPasted = clean;
    el.codeForm.requestSubmit();
  }
}

async function onCodeSubmit(ev) {
  ev.preventDefault();
  if (isBusy(el.verifyBtn) || el.verifyBtn.disabled) return;
  clearErrors();
  const code = normaliseCode(el.code.value);
  el.code.value = code;
  if (code.length !== CODE_LENGTH) {
    showFieldError('code', 'Enter the ' + CODE_LENGTH + '-digit code from the text message.');
    return;
  }
  const op = newOp();
  setBusy(el.verifyBtn, true, 'Verifying…');
  try {
    // Not repeated after a lost answer (see the client's README): a failure is shown instead.
    const body = await request(function (options) {
      return client.check(state.phone, code, options);
    }, {
      signal: op.signal,
      onWaiting: function () { setLabel(el.verifyBtn, 'Waiting for connection…'); },
      onResumed: function () { setLabel(el.verifyBtn, 'Verifying…'); },
    });
    setBusy(el.verifyBtn, false);
    stopWebOtp();
    if (OIDC && typeof body.redirect_to === 'string') {
      // Back to the app, with the code (or its error); the page is left behind.
      setBusy(el.verifyBtn, true, 'Signing in…');
      window.location.assign(body.redirect_to);
      return;
    }
    if (body.session && body.session.access_token) {
      saveSession(body.session);
      await showSignedIn(body.user || null, op.signal);
    } else {
      showVerified(body.user || null);
    }
  } catch (e) {
    if (isAbort(e)) return;
    setBusy(el.verifyBtn, false);
    if (!(e instanceof OtpgateError)) { showAlert(el.codeAlert, 'Something went wrong. Please try again.'); return; }
    if (e.code === 'invalid_code' && !e.field) e.field = 'code';
    showApiError(e, el.verifyBtn);
    if (e.code === 'too_many_attempts' || e.code === 'verification_not_found') {
      // This verification is over: a new code is the only way on.
      stopTimer('expiry');
      el.codeExpiry.textContent = '';
      stopTimer('resend');
      updateResendButton();
      el.resendBtn.focus();
    }
  }
}

// WebOTP: Chrome on Android reads the code from an SMS that ends with "@host #123456".
function startWebOtp() {
  stopWebOtp();
  if (!('OTPCredential' in window) || !navigator.credentials) return;
  const ac = new AbortController();
  state.webOtp = ac;
  navigator.credentials.get({ otp: { transport: ['sms'] }, signal: ac.signal }).then(function (otp) {
    if (state.webOtp !== ac || !otp || !otp.code || state.step !== 'code') return;
    const code = normaliseCode(otp.code);
    el.code.value = code;
    if (code.length === CODE_LENGTH && !isBusy(el.verifyBtn)) {
      state.lastPasted = code;
      el.codeForm.requestSubmit();
    }
  }).catch(function () { /* aborted, denied or unsupported: typing still works */ });
}

function stopWebOtp() {
  if (state.webOtp) { state.webOtp.abort(); state.webOtp = null; }
}

function onChangeNumber() {
  if (state.op) { state.op.abort(); state.op = null; }
  [el.sendBtn, el.verifyBtn, el.resendBtn].forEach(function (b) { if (isBusy(b)) setBusy(b, false); });
  hideOffline(true);
  stopWebOtp();
  stopTimer('expiry');
  stopTimer('resend');
  unblockAll();
  clearErrors();
  el.demoBanner.hidden = true;
  setStep('phone');
  el.phone.focus();
  el.phone.select();
}

// ---------------------------------------------------------------------------------------------
// Demo mode: the demo provider keeps what it "sent" at /dev/inbox (404 in production).

async function checkDemoInbox(e164, signal) {
  for (let i = 0; i < 3; i++) {
    let res;
    try {
      res = await fetch(API_BASE + '/dev/inbox?phone=' + encodeURIComponent(e164), {
        headers: { Accept: 'application/json' }, credentials: 'omit', cache: 'no-store', signal: signal,
      });
    } catch (_) { return; }
    if (!res.ok) return; // 404: not demo mode
    let body;
    try { body = await res.json(); } catch (_) { return; }
    const msgs = (body && Array.isArray(body.messages)) ? body.messages : [];
    const msg = msgs.find(function (m) { return m && m.to === e164; }) || (msgs.length ? msgs[0] : null);
    const code = msg ? demoCodeOf(msg) : '';
    if (code) {
      if (state.step !== 'code' || state.phone !== e164) return;
      el.demoCode.textContent = code;
      el.demoBanner.hidden = false;
      return;
    }
    try { await sleep(400, signal); } catch (_) { return; }
  }
}

function demoCodeOf(msg) {
  if (typeof msg.code === 'string' && /^\d{4,10}$/.test(msg.code)) return msg.code;
  const m = /\b(\d{4,10})\b/.exec(typeof msg.text === 'string' ? msg.text : '');
  return m ? m[1] : '';
}

// ---------------------------------------------------------------------------------------------
// Signed in

function saveSession(s) {
  state.session = s;
  try { window.sessionStorage.setItem(SESSION_KEY, JSON.stringify(s)); } catch (_) { /* private mode */ }
}
function loadSession() {
  try { return JSON.parse(window.sessionStorage.getItem(SESSION_KEY) || 'null'); } catch (_) { return null; }
}
function dropSession() {
  state.session = null;
  try { window.sessionStorage.removeItem(SESSION_KEY); } catch (_) { /* ignore */ }
}

// GET /v1/me; on 401 one refresh (refresh tokens rotate) and a second try.
async function fetchMe(signal) {
  const opts = { signal: signal, repeat: true };
  try {
    return await request(function (o) { return client.me(state.session.access_token, o); }, opts);
  } catch (e) {
    if (!(e instanceof OtpgateError) || e.code !== 'unauthorized' || !state.session.refresh_token) throw e;
    const s = await request(function (o) { return client.refresh(state.session.refresh_token, o); }, { signal: signal });
    saveSession(s);
    return await request(function (o) { return client.me(s.access_token, o); }, opts);
  }
}

async function showSignedIn(user, signal) {
  let me = null;
  try {
    me = await fetchMe(signal);
  } catch (e) {
    if (isAbort(e)) throw e;
    if (e instanceof OtpgateError && e.code === 'unauthorized') {
      dropSession();
      setStep('phone');
      showAlert(el.phoneAlert, 'Your session has ended. Please sign in again.');
      el.phone.focus();
      return;
    }
    // /v1/me unavailable: what the check told us is still true.
  }
  const who = me || user || {};
  el.mePhone.textContent = who.phone || state.phone;
  el.meId.textContent = who.id || '';
  el.meIdRow.hidden = !who.id;
  setBusyLabel(el.signoutBtn, 'Sign out');
  setStep('signed-in', "You're signed in");
  el.title.focus();
  announce("You're signed in.");
}

// The server verified the number but issued no session (sessions disabled).
function showVerified(user) {
  const who = user || {};
  el.mePhone.textContent = who.phone || state.phone;
  el.meId.textContent = who.id || '';
  el.meIdRow.hidden = !who.id;
  setBusyLabel(el.signoutBtn, 'Start over');
  setStep('signed-in', 'Phone number verified');
  el.title.focus();
  announce('Your phone number is verified.');
}

function setBusyLabel(btn, text) {
  btn.dataset.label = text;
  refreshButton(btn);
}

async function onSignOut() {
  if (isBusy(el.signoutBtn)) return;
  clearErrors();
  const s = state.session;
  if (s && s.refresh_token) {
    const op = newOp();
    setBusy(el.signoutBtn, true, 'Signing out…');
    try {
      await request(function (o) { return client.revoke(s.refresh_token, o); }, { signal: op.signal });
    } catch (e) {
      if (isAbort(e)) return;
      // Unreachable or failing: the session is dropped here anyway.
    }
    setBusy(el.signoutBtn, false);
  }
  dropSession();
  el.code.value = '';
  setStep('phone');
  el.phone.focus();
  announce(s ? 'You have signed out.' : 'Start again with a phone number.');
}

// ---------------------------------------------------------------------------------------------
// Steps

const TITLES = { phone: 'Sign in with your phone', code: 'Enter your code', 'signed-in': "You're signed in" };

function setStep(step, title) {
  state.step = step;
  const text = title || TITLES[step];
  el.titleText.textContent = text;
  el.titleIcon.hidden = step !== 'signed-in';
  document.title = text;
  el.phoneForm.hidden = step !== 'phone';
  el.codeForm.hidden = step !== 'code';
  el.signedIn.hidden = step !== 'signed-in';
  if (step !== 'code') {
    stopWebOtp();
    stopTimer('expiry');
    stopTimer('resend');
    el.demoBanner.hidden = true;
  }
  document.body.dataset.step = step;
}

// ---------------------------------------------------------------------------------------------
// Start

function init() {
  el.code.maxLength = CODE_LENGTH;
  el.code.setAttribute('minlength', String(CODE_LENGTH));
  el.codeLabel.textContent = 'Enter the ' + CODE_LENGTH + '-digit code';
  fillCountries();

  el.country.addEventListener('change', function () { onCountryChange(); onPhoneEdited(); });
  el.phone.addEventListener('input', function () { onPhoneInput(); onPhoneEdited(); });
  el.phoneForm.addEventListener('submit', onSendSubmit);
  el.codeForm.addEventListener('submit', onCodeSubmit);
  el.code.addEventListener('input', onCodeInput);
  el.resendBtn.addEventListener('click', onResend);
  el.changeNumber.addEventListener('click', onChangeNumber);
  el.signoutBtn.addEventListener('click', onSignOut);
  el.demoFill.addEventListener('click', function () {
    el.code.value = el.demoCode.textContent;
    clearFieldError('code');
    el.code.focus();
  });

  if (navigator.onLine === false) showOffline(null);

  if (OIDC) {
    // An app's sign-in: nothing of an earlier API session here; the phone may come prefilled.
    if (OIDC.client) document.querySelector('#phone-form .lead').textContent = 'Sign in to continue to ' + OIDC.client + '. We\'ll text you a one-time code.';
    if (OIDC.hint) { el.phone.value = OIDC.hint; onPhoneInput(); }
    setStep('phone');
    document.body.dataset.oidc = 'true';
    document.body.dataset.ready = 'true';
    return;
  }

  const saved = loadSession();
  if (saved && saved.access_token) {
    state.session = saved;
    setStep('signed-in');
    el.mePhone.textContent = '…';
    el.meIdRow.hidden = true;
    showSignedIn(null, newOp().signal).catch(function () { /* aborted */ });
  } else {
    setStep('phone');
  }
  document.body.dataset.ready = 'true';
}

init();
