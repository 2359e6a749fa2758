// ferry's dashboard, kept current without reloading. The page works without
// this script: it only listens to /events, fetches the parts a change made
// stale as server-rendered HTML and swaps them in, streams the logs of
// running builds, and sends the action forms in the background.
(function () {
  'use strict';

  const live = document.getElementById('live');
  const notices = document.getElementById('notice');

  // --- parts of the page, refreshed by topic ---
  const busy = new Map(); // fragment name -> true while fetching
  const again = new Set(); // fragments changed again while fetching

  function sections(topic) {
    return document.querySelectorAll('[data-fragment][data-topic="' + topic + '"]');
  }

  async function refresh(section) {
    const name = section.dataset.fragment;
    if (busy.get(name)) { again.add(name); return; }
    busy.set(name, true);
    try {
      do {
        again.delete(name);
        const resp = await fetch('/fragments/' + encodeURIComponent(name), { cache: 'no-store', credentials: 'same-origin' });
        if (resp.status === 401) { location.assign('/signin'); return; }
        if (!resp.ok) { throw new Error(name + ': HTTP ' + resp.status); }
        swap(section, await resp.text());
      } while (again.has(name));
    } catch (err) {
      setLive(false);
      console.warn('ferry: refresh', err);
    } finally {
      busy.delete(name);
    }
  }

  // swap replaces a section's content, keeping what the person typed,
  // which element had the focus, open details, and the logs streamed so far.
  function swap(section, html) {
    const tpl = document.createElement('template');
    tpl.innerHTML = html;
    const next = tpl.content;
    const byId = (id) => next.querySelector('#' + CSS.escape(id));
    section.querySelectorAll('input[id]').forEach((old) => {
      const n = byId(old.id);
      if (n && old.value) { n.value = old.value; }
    });
    section.querySelectorAll('details[id]').forEach((old) => {
      const n = byId(old.id);
      if (n) { n.open = old.open; }
    });
    section.querySelectorAll('pre.log[data-streamed]').forEach((old) => {
      const n = byId(old.id);
      if (n) { old.hidden = false; n.replaceWith(old); }
    });
    const focused = document.activeElement && section.contains(document.activeElement) ? document.activeElement.id : '';
    section.replaceChildren(next);
    if (focused) {
      const f = document.getElementById(focused);
      if (f) { f.focus(); }
    }
    start(section);
    for (const [id, es] of streams) {
      if (!logOf(id)) { es.close(); streams.delete(id); }
    }
  }

  // --- change events ---
  function setLive(on) {
    if (!live) { return; }
    live.hidden = false;
    live.textContent = on ? 'live' : 'reconnecting…';
    live.classList.toggle('off', !on);
  }

  function listen() {
    if (!window.EventSource || !document.querySelector('[data-fragment]')) { return; }
    const es = new EventSource('/events?follow=1');
    es.onopen = () => setLive(true);
    es.onerror = () => setLive(false);
    for (const topic of ['envs', 'builds']) {
      es.addEventListener(topic, () => sections(topic).forEach(refresh));
    }
  }

  // --- build logs ---
  const streams = new Map(); // build id -> EventSource
  const maxLines = 2000;

  function logOf(id) { return document.getElementById('log-' + id); }

  function follow(pre) {
    const id = pre.dataset.build;
    if (streams.has(id)) { return; }
    const es = new EventSource('/builds/' + encodeURIComponent(id) + '/log?follow=1&after=' + encodeURIComponent(pre.dataset.after || '0'));
    streams.set(id, es);
    pre.dataset.streamed = '1';
    es.addEventListener('line', (ev) => {
      const l = JSON.parse(ev.data);
      const log = logOf(id);
      if (!log) { return; }
      const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
      const ln = document.createElement('span');
      ln.className = 'ln';
      const step = document.createElement('span');
      step.className = 'step';
      step.textContent = l.step;
      ln.append(step, ' ' + l.text);
      log.append(ln, '\n');
      while (log.childNodes.length > 2 * maxLines) { log.firstChild.remove(); }
      if (atEnd) { log.scrollTop = log.scrollHeight; }
    });
    es.addEventListener('steps', (ev) => {
      for (const s of JSON.parse(ev.data)) {
        const li = document.querySelector('#steps-' + CSS.escape(id) + ' li[data-step="' + CSS.escape(s.name) + '"]');
        if (!li) { continue; }
        li.className = 's-' + s.state;
        li.title = s.state + (s.error ? ': ' + s.error : '');
        const st = li.querySelector('.st');
        if (st) { st.textContent = s.state; }
      }
    });
    es.addEventListener('end', (ev) => {
      es.close();
      streams.delete(id);
      const end = JSON.parse(ev.data);
      const log = logOf(id);
      if (log) { delete log.dataset.live; }
      const badge = document.querySelector('#build-' + CSS.escape(id) + ' [data-build-state]');
      if (badge) { badge.textContent = end.state; badge.className = 'badge s-' + end.state; }
    });
  }

  // --- actions, sent in the background ---
  function say(html) {
    if (!notices) { return; }
    const tpl = document.createElement('template');
    tpl.innerHTML = html;
    notices.replaceChildren(tpl.content);
  }

  function sayText(ok, text) {
    const p = document.createElement('p');
    p.className = 'notice ' + (ok ? 'ok' : 'error');
    if (!ok) { p.setAttribute('role', 'alert'); }
    p.textContent = text;
    notices.replaceChildren(p);
  }

  function bind(form) {
    if (form.dataset.bound) { return; }
    form.dataset.bound = '1';
    form.addEventListener('submit', async (ev) => {
      const button = ev.submitter;
      if (!button || !window.fetch) { return; } // the browser sends it
      ev.preventDefault();
      const url = button.getAttribute('formaction') || form.getAttribute('action');
      const buttons = [...form.querySelectorAll('button:not([disabled])')];
      buttons.forEach((b) => { b.disabled = true; });
      try {
        const resp = await fetch(url, {
          method: 'POST', body: new URLSearchParams(new FormData(form)),
          headers: { 'X-Ferry-Async': '1' }, credentials: 'same-origin',
        });
        if (resp.status === 401) { location.assign('/signin'); return; }
        say(await resp.text());
        if (resp.ok) {
          // The form may have been swapped for a fresh one meanwhile.
          form.querySelectorAll('input[id]').forEach((i) => {
            const cur = document.getElementById(i.id);
            if (cur) { cur.value = ''; }
            i.value = '';
          });
        }
      } catch (err) {
        sayText(false, 'ferry did not answer: ' + err.message);
      } finally {
        buttons.forEach((b) => { b.disabled = false; });
      }
    });
  }

  function start(root) {
    root.querySelectorAll('pre.log[data-live]').forEach(follow);
    root.querySelectorAll('form[data-async]').forEach(bind);
  }

  start(document);
  listen();
})();
