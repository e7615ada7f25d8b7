// The browser's group engine (docs/PROTOCOL.md sections 21-23) on the in-memory store: section 22's
// rule for a new sender key (static/js/session.js senderKeyPlan), a group message encrypted once
// with its distributions through pairwise sessions and read by each member device, a stale_epoch
// repair that keeps the body, the frame checks of group_message and the notice lines of changes
// (static/js/client/groups.js).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  bodyKeyId,
  decryptGroupBatchFrom,
  encryptForGroup,
  groupTextPlaintext,
  IdentityChangedError,
  memberDevices,
  noteKeysGiven,
  senderKeyPlan,
} from '../../static/js/session.js';
import { describeChange, groupCopyFrame, parseGroup, withGroupCounts } from '../../static/js/client/groups.js';
import { groupIdOf, groupKey, isGroupKey } from '../../static/js/state.js';
import { bundlesOf, deviceOf, storeOf } from './client_parts.mjs';
import { makeParty } from './helpers.mjs';

const ME = 'me@example.org';
const BOB = 'bob@example.org';
const CAROL = 'carol@example.org';
const GROUP = '2f1c0e4a-9b7d-4c1e-8f3a-5d6b7c8d9e0f';

test('section 22: a key given to a device that left is replaced; new devices only get the current one', () => {
  const targets = [[BOB, 1], [CAROL, 1]];
  assert.deepEqual(senderKeyPlan(null, targets), { fresh: true, needs: targets });
  assert.deepEqual(senderKeyPlan([[BOB, 1]], targets), { fresh: false, needs: [[CAROL, 1]] });
  assert.deepEqual(senderKeyPlan([[BOB, 1], [CAROL, 1]], targets), { fresh: false, needs: [] });
  // Carol's device 2 held the key and was unlinked: everyone gets a new one.
  assert.deepEqual(senderKeyPlan([[BOB, 1], [CAROL, 2]], targets), { fresh: true, needs: targets });
});

test('member devices: every device of every member but this one, lower case, in order', () => {
  const members = [
    { email: 'Carol@Example.org', devices: [2, 1] },
    { email: ME, devices: [1, 2] },
    { email: BOB, devices: [1] },
  ];
  assert.deepEqual(memberDevices(members, ME, 1), [[BOB, 1], [CAROL, 1], [CAROL, 2], [ME, 2]]);
});

test('group keys are conversation keys that no email can be', () => {
  assert.equal(groupKey(GROUP), `group:${GROUP}`);
  assert.ok(isGroupKey(groupKey(GROUP)));
  assert.ok(!isGroupKey(BOB));
  assert.equal(groupIdOf(groupKey(GROUP)), GROUP);
});

test('group_message frames are checked before anything is decrypted', () => {
  const frame = { type: 'group_message', id: 9, message_id: 7, group: GROUP, from: BOB, from_device: 1, body: 'AAAA', sent_at: 'x' };
  assert.equal(groupCopyFrame(frame, ME).own, false);
  assert.equal(groupCopyFrame({ ...frame, from: 'ME@example.org' }, ME).from, ME);
  assert.equal(groupCopyFrame({ ...frame, from: 'ME@example.org' }, ME).own, true);
  assert.equal(groupCopyFrame({ ...frame, key: { kind: 'prekey', body: 'AA' } }, ME).key.kind, 'prekey');
  for (const broken of [
    { ...frame, id: 0 },
    { ...frame, message_id: '7' },
    { ...frame, group: 'not-a-uuid' },
    { ...frame, group: GROUP.toUpperCase() },
    { ...frame, from_device: 0 },
    { ...frame, body: 5 },
    { ...frame, key: { kind: 'prekey' } },
    { ...frame, from: '' },
  ]) {
    assert.equal(groupCopyFrame(broken, ME), null, JSON.stringify(broken));
  }
});

test('changes become the lines of the group history', () => {
  const line = (change, members, actor = 'alice@x') => describeChange({ change, actor, members });
  assert.equal(line('created', ['bob@x', 'carol@x']), 'alice@x created the group with bob@x, carol@x');
  assert.equal(line('added', ['carol@x']), 'alice@x added carol@x');
  assert.equal(line('removed', ['carol@x']), 'alice@x removed carol@x');
  assert.equal(line('left', ['carol@x'], 'carol@x'), 'carol@x left');
  assert.equal(line('admin', ['bob@x'], null), 'the server made bob@x admin');
  assert.equal(describeChange({ change: 'deleted', actor: null, members: [] }), 'the group was deleted');
});

test('a malformed group answer is refused', () => {
  const group = { id: GROUP, epoch: 2, role: 'admin', members: [{ email: BOB, role: 'member', devices: [1] }] };
  assert.equal(parseGroup(group).members[0].email, BOB);
  assert.throws(() => parseGroup({ ...group, epoch: 0 }));
  assert.throws(() => parseGroup({ ...group, members: [{ email: BOB, devices: ['1'] }] }));
  assert.throws(() => parseGroup({ ...group, id: 'x' }));
});

test('group receipts: counts kept, read by all ends the question', () => {
  const sent = { id: 'c', status: 'sent', groupAwaiting: 7 };
  assert.deepEqual(withGroupCounts(sent, { delivered: 1, read: 0, of: 2 }), { ...sent, counts: { delivered: 1, read: 0, of: 2 } });
  assert.equal(withGroupCounts(sent, { delivered: 2, read: 1, of: 2 }).status, 'delivered');
  const read = withGroupCounts(sent, { delivered: 2, read: 2, of: 2 });
  assert.equal(read.status, 'read');
  assert.equal('groupAwaiting' in read, false);
});

// --- encryption and decryption on stores ---------------------------------------------------------

function setUp() {
  const me = makeParty('me');
  const bob = makeParty('bob');
  const carol = makeParty('carol');
  const devices = { [BOB]: [deviceOf(bob, 1)], [CAROL]: [deviceOf(carol, 1)], [ME]: [deviceOf(me, 1), deviceOf(me, 2)] };
  const stores = { bob: storeOf(devices[BOB][0]), carol: storeOf(devices[CAROL][0]), me2: storeOf(devices[ME][1]) };
  const store = storeOf(devices[ME][0]);
  const asked = [];
  const fetchBundles = async (email, ids) => {
    asked.push([email, ids]);
    return bundlesOf(devices[email].filter((d) => ids.includes(d.id)));
  };
  return { me, bob, carol, store, stores, asked, fetchBundles };
}

const members = (...emails) => emails.map((email) => ({ email, devices: email === ME ? [1, 2] : [1] }));

async function send(store, fetchBundles, groupMembers, text, again = null) {
  return encryptForGroup(store, { groupId: GROUP, self: ME, selfDevice: 1, members: groupMembers }, groupTextPlaintext(text), {
    fetchBundles,
    again,
    writesFor: () => [],
  });
}

let copyId = 100;
async function readAt(store, made, email, device, { own = false, sender = ME } = {}) {
  const key = made.keys.find((k) => k.email === email && k.device === device);
  copyId += 1;
  const frame = { id: copyId, message_id: 50, group: GROUP, from: sender, from_device: 1, body: made.body, key: key ? { kind: key.kind, body: key.body } : null, own };
  const [result] = await decryptGroupBatchFrom(store, { email: sender, device: 1, own }, [frame], {
    recordId: (f) => `in:${f.id}`,
    messageRecord: (f, { content, failed }) => ({ id: `in:${f.id}`, text: content && content.text, failed }),
  });
  return result.message;
}

test('a group message: one body for all, the sender key handed over pairwise once', async () => {
  const { store, stores, asked, fetchBundles } = setUp();
  const first = await send(store, fetchBundles, members(ME, BOB, CAROL), 'hello group');
  assert.deepEqual(first.keys.map((k) => [k.email, k.device]), [[BOB, 1], [CAROL, 1], [ME, 2]]);
  assert.deepEqual(asked.map(([email]) => email).sort(), [BOB, CAROL, ME]);
  assert.equal((await readAt(stores.bob, first, BOB, 1)).text, 'hello group');
  assert.equal((await readAt(stores.carol, first, CAROL, 1)).text, 'hello group');
  // Our other device reads it under our own identity key.
  assert.equal((await readAt(stores.me2, first, ME, 2, { own: true })).text, 'hello group');

  // Before the server took it, nobody counts as holding the key: the next frame hands it again.
  const again = await send(store, fetchBundles, members(ME, BOB, CAROL), 'second');
  assert.equal(again.keys.length, 3);
  await noteKeysGiven(store, GROUP, again);
  const third = await send(store, fetchBundles, members(ME, BOB, CAROL), 'third');
  assert.deepEqual(third.keys, []);
  assert.equal(bodyKeyId(third.body), bodyKeyId(first.body));
  // Bob skipped "second" (its key entry was never read): the chain still reaches "third".
  assert.equal((await readAt(stores.bob, third, BOB, 1)).text, 'third');

  // Carol leaves: a new key, handed to the devices still members.
  const after = await send(store, fetchBundles, members(ME, BOB), 'carol left');
  assert.notEqual(bodyKeyId(after.body), bodyKeyId(first.body));
  assert.deepEqual(after.keys.map((k) => [k.email, k.device]), [[BOB, 1], [ME, 2]]);
  assert.equal((await readAt(stores.bob, after, BOB, 1)).text, 'carol left');
  const carolsTry = await readAt(stores.carol, { ...after, keys: [] }, CAROL, 1);
  assert.equal(carolsTry.failed, 'unknown_sender_key');
});

test('stale_epoch repair: the body stays, a device that joined gets the stored distribution', async () => {
  const { store, stores, fetchBundles } = setUp();
  const made = await send(store, fetchBundles, members(ME, BOB), 'before carol');
  await noteKeysGiven(store, GROUP, made);
  const first = await send(store, fetchBundles, members(ME, BOB), 'sent as carol joins');
  assert.deepEqual(first.keys, []);
  const repaired = await send(store, fetchBundles, members(ME, BOB, CAROL), 'ignored: the body is reused', first);
  assert.equal(repaired.body, first.body);
  assert.deepEqual(repaired.keys.map((k) => k.email), [CAROL]);
  assert.equal((await readAt(stores.carol, repaired, CAROL, 1)).text, 'sent as carol joins');

  // A member who holds the key left: everything is made again, with a new key.
  await noteKeysGiven(store, GROUP, repaired);
  const remade = await send(store, fetchBundles, members(ME, BOB), 'made again', repaired);
  assert.notEqual(remade.body, repaired.body);
  assert.notEqual(bodyKeyId(remade.body), bodyKeyId(repaired.body));
});

test('nothing goes to a group with a member whose safety number changed', async () => {
  const { store, fetchBundles, carol } = setUp();
  store.apply([{ put: 'identities', value: { email: CAROL, identityKey: carol.identityKeyPair.publicKey, changedTo: 'x', verified: false } }]);
  await assert.rejects(send(store, fetchBundles, members(ME, BOB, CAROL), 'held'), (error) => error instanceof IdentityChangedError && error.email === CAROL);
  assert.equal(await store.get('senderKeys', GROUP), null);
});

test('a body that fails leaves the sender key record as it was; a redelivered copy is a duplicate', async () => {
  const { store, stores, fetchBundles } = setUp();
  const made = await send(store, fetchBundles, members(ME, BOB), 'once');
  const tampered = { ...made, body: made.body.slice(0, -4) + (made.body.endsWith('AAA=') ? 'BBB=' : 'AAA=') };
  assert.ok((await readAt(stores.bob, tampered, BOB, 1)).failed);
  const held = await stores.bob.get('receivedSenderKeys', GROUP, ME, 1);
  // The distribution (an authentic pairwise envelope) was kept; the genuine body still reads.
  assert.ok(held);
  assert.equal((await readAt(stores.bob, { ...made, keys: [] }, BOB, 1)).text, 'once');
});
