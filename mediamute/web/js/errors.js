// Error boxes: every failed request shows Graph's message (and status, code, request-id), at most four at a time,
// each fading after 20 s; the activity log records it too.

import { ApiError } from './api.js';
import { logActivity } from './activity.js';
import { $ } from './dom.js';

const MAX_SHOWN = 4;
const FADE_MS = 19200;
const SHOWN_MS = 20000;

export function showError(error, context) {
  const box = document.createElement('div');
  box.className = 'error';
  box.dataset.testid = 'error';
  const text = document.createElement('div');
  text.className = 'error-text';
  const title = document.createElement('strong');
  title.textContent = context ? `${context}: ` : '';
  const message = document.createElement('span');
  message.className = 'error-message';
  message.textContent = error && error.message ? error.message : String(error);
  text.append(title, message);
  const meta = document.createElement('div');
  meta.className = 'error-meta';
  if (error instanceof ApiError) {
    meta.textContent = [error.status ? `HTTP ${error.status}` : '', error.code, error.requestId ? `request-id ${error.requestId}` : '']
      .filter(Boolean).join(' · ');
  }
  const close = document.createElement('button');
  close.className = 'error-close';
  close.type = 'button';
  close.setAttribute('aria-label', 'dismiss');
  close.textContent = '×';
  close.addEventListener('click', () => box.remove());
  box.append(text, meta, close);
  const errors = $('#errors');
  errors.prepend(box);
  while (errors.children.length > MAX_SHOWN) errors.lastElementChild.remove();
  setTimeout(() => box.classList.add('fading'), FADE_MS);
  setTimeout(() => box.remove(), SHOWN_MS);
  logActivity(`${context ? context + ': ' : ''}${message.textContent}`, 'is-error');
}
