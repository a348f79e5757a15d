// Checks the hash chain of an unstuck case dossier (`unstuck audit export CASE --out DIR`) with
// nothing of unstuck: Node's sha256 and a stock RFC 8785 (JCS) library.
//
//   node verify.js DIR            DIR holds CASE.events.jsonl (or name the .events.jsonl file itself)
//
// For every stored event, one per line in the order stored:
//   - its hash is sha256 over the JCS bytes of the event without its "hash" member,
//   - its stored bytes are exactly the JCS bytes of the whole event (nothing edited or re-encoded),
//   - its seq is 1 for the first event and one more than the event before for every other,
//   - its prev_hash is the hash of the event before ("" for the first),
//   - its case_id is the case of the first event.
// Prints one line per event and a verdict. Exit 0: the chain is intact; 1: it is not (the first
// failure is named); 2: no dossier to read.

import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import canonicalize from 'canonicalize';

const EVENTS_SUFFIX = '.events.jsonl';

function eventsFile (target) {
  if (statSync(target, { throwIfNoEntry: false })?.isFile()) {
    return target;
  }
  const found = readdirSync(target).filter((name) => name.endsWith(EVENTS_SUFFIX));
  if (found.length !== 1) {
    throw new Error(`${target} holds ${found.length} *${EVENTS_SUFFIX} files; name the one to check`);
  }
  return join(target, found[0]);
}

// The stored bodies, one per line: JCS writes a line break inside a string as \n, so a raw line
// break only ever ends an event (a stored message holding several events holds one per line too).
function storedLines (bytes) {
  const lines = [];
  let start = 0;
  for (let at = bytes.indexOf(0x0a); at !== -1; at = bytes.indexOf(0x0a, start)) {
    lines.push(bytes.subarray(start, at));
    start = at + 1;
  }
  if (start < bytes.length) {
    lines.push(bytes.subarray(start)); // a last line without its line break
  }
  return lines;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const sha256 = (text) => createHash('sha256').update(text, 'utf8').digest('hex');

// What is wrong with one stored event, or null; `before` is the event before it (null for the first).
function problem (stored, before) {
  let event;
  try {
    event = JSON.parse(utf8.decode(stored));
  } catch (err) {
    return { event: null, problem: `not a JSON event: ${err.message}` };
  }
  if (event === null || typeof event !== 'object' || Array.isArray(event)) {
    return { event: null, problem: 'not a JSON object' };
  }
  const { hash, ...content } = event;
  let jcsContent, jcsWhole;
  try {
    jcsContent = canonicalize(content);
    jcsWhole = canonicalize(event);
  } catch (err) {
    return { event, problem: `has no JCS form: ${err.message}` };
  }
  const seq = before === null ? 1 : before.seq + 1;
  const prevHash = before === null ? '' : before.hash;
  if (sha256(jcsContent) !== hash) {
    return { event, problem: "its hash does not match its content (sha256 of the event's JCS form without hash)" };
  }
  if (!Buffer.from(jcsWhole, 'utf8').equals(stored)) {
    return { event, problem: 'its stored bytes are not the JCS form of the event (edited or re-encoded after sealing)' };
  }
  if (event.seq !== seq) {
    return { event, problem: `seq is ${JSON.stringify(event.seq)} where ${seq} was due` };
  }
  if (event.prev_hash !== prevHash) {
    return { event, problem: `prev_hash is ${JSON.stringify(event.prev_hash)}, not the hash of the event before (${JSON.stringify(prevHash)})` };
  }
  if (before !== null && event.case_id !== before.case_id) {
    return { event, problem: `case_id ${JSON.stringify(event.case_id)} is not the dossier's case ${JSON.stringify(before.case_id)}` };
  }
  return { event, problem: null };
}

function verify (path) {
  const lines = storedLines(readFileSync(path));
  let before = null;
  let first = null;
  lines.forEach((stored, index) => {
    const { event, problem: wrong } = problem(stored, before);
    const where = `line ${index + 1}`;
    const seq = event && Number.isInteger(event.seq) ? `seq ${event.seq}` : 'seq ?';
    const type = event && typeof event.type === 'string' ? event.type : '?';
    const hash = event && typeof event.hash === 'string' ? event.hash.slice(0, 12) : '?';
    console.log(`${where}  ${seq}  ${type}  ${hash}  ${wrong === null ? 'ok' : `FAILED: ${wrong}`}`);
    if (wrong !== null && first === null) {
      first = `${where} (${seq}, ${type}): ${wrong}`;
    }
    // the next event links to this one's stored hash and seq, right or wrong
    before = event === null ? before : { seq: event.seq, hash: event.hash, case_id: event.case_id };
  });
  if (lines.length === 0) {
    first = `${path} holds no event`;
  }
  if (first !== null) {
    console.log(`NOT INTACT: ${first}`);
    return 1;
  }
  console.log(`INTACT: ${lines.length} event(s) of case ${before.case_id}, seq 1 to ${before.seq}, head ${before.hash}`);
  return 0;
}

function main (args) {
  if (args.length !== 1 || args[0].startsWith('-')) {
    console.error('usage: node verify.js DIR   (a dossier written by `unstuck audit export CASE --out DIR`)');
    return 2;
  }
  let path;
  try {
    path = eventsFile(args[0]);
  } catch (err) {
    console.error(`verify: ${err.message}`);
    return 2;
  }
  return verify(path);
}

process.exitCode = main(process.argv.slice(2));
