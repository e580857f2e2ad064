// The one DOM shorthand every view uses.
export const $ = (selector) => document.querySelector(selector);
