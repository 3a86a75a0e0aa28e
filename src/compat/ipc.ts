// The drop-in's IPC channel: Node's own protocol (lib/internal/
// child_process.js setupChannel, .../serialization.js, internal/
// socket_list.js are the reference), spoken on the parent's end of the
// socketpair a child knows as NODE_CHANNEL_FD, so an unmodified Node child
// (process.send, process.on('message'), process.disconnect) talks to it.
//
// Layers, bottom up: ChannelSocket moves bytes and fds (native/addon/
// channel.cc polls the fd and calls sendmsg/recvmsg: a net.Socket cannot
// carry SCM_RIGHTS); a Framing turns bytes into messages (newline-delimited
// JSON, or V8-serialized with a big-endian length); setupChannel gives the
// ChildProcess Node's send/disconnect/'message' and the handle protocol
// (NODE_HANDLE, then NODE_HANDLE_ACK/NACK; one handle in flight at a time).
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import { deprecate } from 'node:util';
import v8 from 'node:v8';
import { binding, type NativeWatch } from '../binding';
import { EAGAIN, ECANCELED, EINVAL, EPIPE } from '../errno';
import { codedError, invalidArgType, SystemError } from '../errors';
import { validateObject } from './args';

export type Serialization = 'json' | 'advanced';

const UV_READABLE = 1;
const UV_WRITABLE = 2;
/** channel.cc's report of a poll error: libuv has stopped polling the fd. */
const CHANNEL_ERROR = 8;
/** Bytes per recvmsg, as libuv's read size for a pipe. */
const READ_SIZE = 64 * 1024;
/** Reads per wake-up: a busy child cannot hold this loop for long (the poll is level-triggered). */
const READS_PER_EVENT = 16;
/** Node's: "if the primary is > 2 read() calls behind, please stop sending". */
const HIGH_WATER = 65536 * 2;
const MAX_HANDLE_RETRANSMISSIONS = 3;

interface QueuedWrite {
  data: Buffer;
  offset: number;
  /** Still to go with the first bytes sent; -1 once sent (or none). */
  fd: number;
  done: (errno: number) => void;
}

/**
 * The parent's end of the channel: owns the fd (through the native watch)
 * from construction to close(). Writes go out at once when the socket has
 * room and are queued (in order, fds with their bytes) when it has not.
 */
class ChannelSocket {
  readonly fd: number;
  writeQueueSize = 0;
  #watch: NativeWatch | null = null;
  #queue: QueuedWrite[] = [];
  #reading = true;
  #closing = false;
  /** The user's ref()/unref(); queued writes keep the loop alive whatever it says, as libuv's write requests do. */
  #userRef = true;
  /** The poll failed (libuv stopped it): nothing more can be polled. */
  #broken = false;
  readonly #scratch = Buffer.allocUnsafe(READ_SIZE);
  readonly #fdsOut = new Int32Array(9);

  constructor(
    fd: number,
    private readonly onData: (chunk: Buffer, fds: number[] | null) => void,
    private readonly onEnd: () => void,
  ) {
    this.fd = fd;
    const watch = binding.channelWatch(fd, (events: number) => this.#onEvent(events));
    if (typeof watch === 'number') throw new SystemError(-watch, 'uv_poll_init', { detail: 'the IPC channel' });
    this.#watch = watch;
  }

  /** 0 (async says whether it was queued), or a negative errno: nothing was sent. */
  write(data: Buffer, fd: number, done: (errno: number) => void): { err: number; async: boolean } {
    if (this.#watch === null || this.#closing) return { err: -ECANCELED, async: false };
    if (this.#queue.length === 0) {
      const n = binding.channelSend(this.fd, data, 0, data.length, fd);
      if (n === data.length) return { err: 0, async: false };
      if (n < 0 && n !== -EAGAIN) return { err: n, async: false };
      const sent = Math.max(n, 0);
      this.#enqueue({ data, offset: sent, fd: sent > 0 ? -1 : fd, done });
    } else {
      this.#enqueue({ data, offset: 0, fd, done });
    }
    return { err: 0, async: true };
  }

  ref(on: boolean): void {
    this.#userRef = on;
    this.#applyRef();
  }

  #applyRef(): void {
    if (this.#watch !== null) binding.ref(this.#watch, !this.#closing && (this.#userRef || this.#queue.length > 0));
  }

  /**
   * Stops reading and lets go of the fd once the queued writes are out (or
   * fail): a disconnect() right after a send() does not cut the message off.
   * The drain does not keep the process alive.
   */
  close(): void {
    if (this.#watch === null || this.#closing) return;
    this.#closing = true;
    this.#reading = false;
    if (this.#queue.length === 0 || this.#broken) return this.#release(0);
    this.#applyRef();
    this.#poll();
  }

  #enqueue(w: QueuedWrite): void {
    this.#queue.push(w);
    this.writeQueueSize += w.data.length - w.offset;
    if (this.#queue.length === 1) {
      this.#applyRef();
      this.#poll();
    }
  }

  #poll(): void {
    if (this.#watch === null || this.#broken) return;
    const events = (this.#reading ? UV_READABLE : 0) | (this.#queue.length > 0 ? UV_WRITABLE : 0);
    binding.channelPoll(this.#watch, events);
  }

  #onEvent(events: number): void {
    if (events & CHANNEL_ERROR) return this.#onPollError();
    if (events & UV_WRITABLE) this.#flush();
    if (events & UV_READABLE && this.#reading) this.#read();
  }

  #flush(): void {
    while (this.#queue.length > 0 && this.#watch !== null) {
      const w = this.#queue[0];
      const n = binding.channelSend(this.fd, w.data, w.offset, w.data.length - w.offset, w.fd);
      if (n === -EAGAIN) return;
      if (n < 0) return this.#failWrites(n);
      w.fd = -1;
      w.offset += n;
      this.writeQueueSize -= n;
      if (w.offset < w.data.length) return;
      this.#queue.shift();
      w.done(0);
    }
    if (this.#closing) return this.#release(0);
    this.#applyRef();
    this.#poll();
  }

  /**
   * The peer is gone with an error pending (ECONNRESET: it closed with our
   * data unread). The calls themselves say which error: queued writes fail
   * with it, reading ends; an end that waited for a drain comes now.
   */
  #onPollError(): void {
    this.#broken = true;
    if (this.#queue.length > 0) this.#flush();
    if (this.#queue.length > 0) this.#failWrites(-EPIPE);
    // libuv polls no more: everything the child sent before it went is read now.
    if (this.#reading) this.#read(true);
    if (this.#reading) {
      this.#reading = false;
      this.onEnd();
    }
    if (this.#closing) this.#release(0);
  }

  #failWrites(errno: number): void {
    const queue = this.#queue;
    this.#queue = [];
    this.writeQueueSize = 0;
    for (const w of queue) w.done(errno);
    if (this.#closing) this.#release(errno);
    else {
      this.#applyRef();
      this.#poll();
    }
  }

  /** drain: read until EAGAIN or the end (the poll will not call again), not one wake-up's worth. */
  #read(drain = false): void {
    for (let i = 0; (drain || i < READS_PER_EVENT) && this.#reading; i++) {
      const n = binding.channelRecv(this.fd, this.#scratch, this.#fdsOut);
      if (n === -EAGAIN) return;
      const count = this.#fdsOut[0];
      const fds = count < 0 ? null : Array.from(this.#fdsOut.subarray(1, 1 + count));
      if (n <= 0) {
        // EOF, or an error (ECONNRESET...): either way the channel is over, as in Node.
        if (fds) for (const fd of fds) binding.closeFd(fd);
        this.#reading = false;
        this.#poll();
        this.onEnd();
        return;
      }
      this.onData(this.#scratch.subarray(0, n), fds);
      // A short read emptied the socket (as libuv assumes): no recvmsg just
      // to hear EAGAIN; the level-triggered poll calls again if more came.
      if (n < READ_SIZE && !drain) return;
    }
  }

  #release(errno: number): void {
    const watch = this.#watch;
    if (watch === null) return;
    this.#watch = null;
    this.#reading = false;
    if (this.#queue.length > 0) this.#failWrites(errno || -ECANCELED);
    binding.unwatch(watch);
  }

  get closed(): boolean {
    return this.#watch === null;
  }
}

// ---- framing ---------------------------------------------------------------

interface Framing {
  /**
   * Calls deliver for each message this chunk completes, in order (the
   * chunk is only borrowed); throws at the first one that cannot be
   * parsed, after delivering those before it.
   */
  parse(chunk: Buffer, deliver: (message: unknown) => void): void;
  /** Bytes of a message still incomplete (Node's channel.buffering). */
  readonly buffering: boolean;
  encode(message: unknown): Buffer;
}

/** Newline-delimited JSON (Node's default, 'json'). */
class JsonFraming implements Framing {
  #decoder = new StringDecoder('utf8');
  #partial = '';
  parse(chunk: Buffer, deliver: (message: unknown) => void): void {
    const lines = this.#decoder.write(chunk).split('\n');
    const last = lines.pop() as string;
    if (lines.length === 0) {
      this.#partial += last;
      return;
    }
    lines[0] = this.#partial + lines[0];
    this.#partial = last;
    for (const line of lines) deliver(JSON.parse(line));
  }
  get buffering(): boolean {
    return this.#partial.length > 0;
  }
  encode(message: unknown): Buffer {
    return Buffer.from(`${JSON.stringify(message)}\n`, 'utf8');
  }
}

// Node's host-object rule for 'advanced' (internal/child_process/
// serialization.js): a tag before each host object, views as V8 writes
// them, any other native object as a plain copy of its properties.
const kArrayBufferViewTag = 0;
const kNotArrayBufferViewTag = 1;

// @types/node leaves out the hooks the default (de)serializer implements.
const HostSerializer = v8.DefaultSerializer as unknown as new () => v8.Serializer & { _writeHostObject(object: object): void };
const HostDeserializer = v8.DefaultDeserializer as unknown as new (buffer: Buffer) => v8.Deserializer & { _readHostObject(): unknown };

class ChannelSerializer extends HostSerializer {
  override _writeHostObject(object: object): void {
    if (ArrayBuffer.isView(object)) {
      this.writeUint32(kArrayBufferViewTag);
      super._writeHostObject(object);
      return;
    }
    this.writeUint32(kNotArrayBufferViewTag);
    this.writeValue({ ...object });
  }
}

class ChannelDeserializer extends HostDeserializer {
  override _readHostObject(): unknown {
    const tag = this.readUint32();
    if (tag === kArrayBufferViewTag) return super._readHostObject();
    if (tag !== kNotArrayBufferViewTag) throw codedError(Error, 'ERR_CLONEFD_IPC_PROTOCOL', `IPC message with an unknown host object tag ${tag}`);
    return this.readValue();
  }
}

/** V8's serialization behind a 4-byte big-endian length ('advanced'). */
class AdvancedFraming implements Framing {
  #chunks: Buffer[] = [];
  #size = 0;
  parse(chunk: Buffer, deliver: (message: unknown) => void): void {
    // A copy of its own, outside Buffer's shared pool: received Buffers and
    // typed arrays are views into it, and must not see this process's data.
    const copy = Buffer.allocUnsafeSlow(chunk.length);
    chunk.copy(copy);
    this.#chunks.push(copy);
    this.#size += chunk.length;
    while (this.#size >= 4) {
      let head = this.#chunks[0];
      if (head.length < 4) head = this.#join();
      const total = head.readUInt32BE(0) + 4;
      if (this.#size < total) break;
      const all = this.#chunks.length === 1 ? head : this.#join();
      const de = new ChannelDeserializer(all.subarray(4, total));
      const rest = all.subarray(total);
      this.#chunks = rest.length > 0 ? [rest] : [];
      this.#size = rest.length;
      de.readHeader();
      deliver(de.readValue());
    }
  }
  #join(): Buffer {
    const all = Buffer.concat(this.#chunks, this.#size);
    this.#chunks = [all];
    return all;
  }
  get buffering(): boolean {
    return this.#size > 0;
  }
  encode(message: unknown): Buffer {
    const ser = new ChannelSerializer();
    ser.writeRawBytes(Buffer.alloc(4));
    ser.writeHeader();
    ser.writeValue(message);
    const out = ser.releaseBuffer();
    out.writeUInt32BE(out.length - 4, 0);
    return out;
  }
}

// ---- the ChildProcess side ---------------------------------------------------

type Callback = (err: Error | null) => void;
interface SendOptions {
  swallowErrors?: boolean;
  keepOpen?: boolean;
}
/** A libuv handle wrap (TCP, Pipe, UDP): what Node's handles have inside. */
interface HandleWrap {
  fd: number;
  close(cb?: () => void): void;
  onread?: unknown;
}
interface HandleMessage {
  cmd: 'NODE_HANDLE';
  type: HandleType;
  msg: unknown;
  key?: string;
  dgramType?: string;
}
type HandleType = 'net.Socket' | 'net.Server' | 'net.Native' | 'dgram.Socket' | 'dgram.Native';
interface Queued {
  message: unknown;
  handle: unknown;
  options: SendOptions;
  callback: Callback | undefined;
}
interface Pending {
  wire: Buffer;
  handle: HandleWrap;
  fd: number;
  callback: Callback | undefined;
  retransmissions: number;
}

/** What setupChannel adds to a ChildProcess (Node's own properties of an IPC child). */
export interface IpcTarget extends EventEmitter {
  connected: boolean;
  channel: Control | null;
  send(message: unknown, handle?: unknown, options?: unknown, callback?: unknown): boolean;
  disconnect(): void;
  _send(message: unknown, handle: unknown, options: SendOptions | boolean | undefined, callback?: Callback): boolean;
  _disconnect(): void;
  _handleQueue: Queued[] | null;
  _pendingMessage: Pending | null;
}

const nop = () => {};
const CHANNEL_DEPRECATION = '_channel is deprecated. Use ChildProcess.channel instead.';

/**
 * `subprocess.channel`: Node's Control. ref()/unref() are the user's and
 * win over the counting that send() does while a write is queued.
 */
export class Control extends EventEmitter {
  #socket: ChannelSocket | null;
  #refs = 0;
  #explicit = false;
  /** @internal Messages that came before any 'message' listener (Node's kPendingMessages). */
  pending: [string, unknown, unknown][] = [];

  /** @internal */
  constructor(socket: ChannelSocket) {
    super();
    this.#socket = socket;
  }

  /** @internal */
  refCounted(): void {
    if (++this.#refs === 1 && !this.#explicit) this.#socket?.ref(true);
  }

  /** @internal */
  unrefCounted(): void {
    if (--this.#refs === 0 && !this.#explicit) {
      this.#socket?.ref(false);
      this.emit('unref');
    }
  }

  /** The channel keeps the event loop alive (the parent's default). */
  ref(): void {
    this.#explicit = true;
    this.#socket?.ref(true);
  }

  /** The channel no longer keeps the event loop alive. */
  unref(): void {
    this.#explicit = true;
    this.#socket?.ref(false);
  }

  /** The parent's end of the channel. */
  get fd(): number | undefined {
    // Node's Control keeps its closed Pipe, whose fd is then UV_EINVAL.
    return this.#socket && !this.#socket.closed ? this.#socket.fd : -EINVAL;
  }
}

function isInternal(message: unknown): message is { cmd: string } {
  if (message === null || typeof message !== 'object') return false;
  const cmd = (message as { cmd?: unknown }).cmd;
  return typeof cmd === 'string' && cmd.length > 5 && cmd.startsWith('NODE_');
}

const ipcChannelClosed = () => codedError(Error, 'ERR_IPC_CHANNEL_CLOSED', 'Channel closed');

/** The libuv handle inside a dgram.Socket (Node keeps it behind a symbol of internal/dgram). */
function dgramHandle(socket: dgram.Socket): HandleWrap | undefined {
  const sym = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  const state = sym ? (socket as unknown as Record<symbol, { handle?: HandleWrap | null }>)[sym] : undefined;
  return state?.handle ?? undefined;
}

function wrapName(handle: unknown): string | undefined {
  if (handle === null || typeof handle !== 'object') return undefined;
  const name = (handle as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === 'string' ? name : undefined;
}

/** The fds a channel's receiving side holds; an fd that arrives while one waits replaces it. */
class ReceivedFd {
  #fd = -1;
  put(fds: number[] | null): void {
    if (fds === null) return this.clear(); // the kernel dropped them (a full fd table): a NACK follows
    for (const fd of fds) {
      this.clear();
      this.#fd = fd;
    }
  }
  take(): number {
    const fd = this.#fd;
    this.#fd = -1;
    return fd;
  }
  clear(): void {
    if (this.#fd >= 0) binding.closeFd(this.#fd);
    this.#fd = -1;
  }
}

interface ChannelState {
  socket: ChannelSocket;
  sockets: { send: Record<string, SocketListSend>; got: Record<string, SocketListReceive> };
}
const channelState = new WeakMap<IpcTarget, ChannelState>();

/**
 * Gives target Node's IPC members over the parent's end `fd` (owned from
 * now on). `onClosed` runs once when the channel is gone (EOF or
 * disconnect): the ChildProcess counts it towards 'close'.
 */
export function setupChannel(target: IpcTarget, fd: number, mode: Serialization, onClosed: () => void): Control {
  const framing: Framing = mode === 'advanced' ? new AdvancedFraming() : new JsonFraming();
  const received = new ReceivedFd();
  let closedReported = false;
  const reportClosed = () => {
    if (closedReported) return;
    closedReported = true;
    received.clear();
    onClosed();
  };

  const onData = (chunk: Buffer, fds: number[] | null) => {
    received.put(fds);
    try {
      framing.parse(chunk, (message) => {
        if (!isInternal(message)) return deliver(message, undefined, false);
        // A NODE_HANDLE message takes the fd that came with it (none: a NACK follows).
        const fd = message.cmd === 'NODE_HANDLE' ? received.take() : -1;
        deliver(message, fd >= 0 ? fd : undefined, true);
      });
    } catch (err) {
      // Not Node's protocol (a child that writes garbage to the fd): the
      // channel is unusable from here. Reported, not thrown from the loop,
      // after the messages before it (their events are a tick away).
      process.nextTick(() => target.emit('error', err));
      socket.close();
      endOfChannel();
    }
  };

  let atEof = false;
  /** A disconnect() that waits for a message half read to complete. */
  let waitingFinish: (() => void) | null = null;
  const endOfChannel = () => {
    atEof = true;
    if (target.connected) target.disconnect();
    else if (waitingFinish) process.nextTick(waitingFinish);
    else if (target.channel !== null) {
      // A disconnect() waiting for a handle's ACK: none will come. What
      // waited behind it is not sent, and says so (Node drops it silently
      // and emits ERR_IPC_DISCONNECTED instead of 'disconnect').
      const queue = target._handleQueue ?? [];
      target._handleQueue = null;
      for (const q of queue) if (typeof q.callback === 'function') process.nextTick(q.callback, ipcChannelClosed());
      target._disconnect();
    }
    socket.close();
    if (target.channel !== null) target.channel = null;
    reportClosed();
  };

  const socket = new ChannelSocket(fd, onData, endOfChannel);
  const control = new Control(socket);
  const state: ChannelState = { socket, sockets: { send: {}, got: {} } };
  channelState.set(target, state);

  target.channel = control;
  Object.defineProperty(target, '_channel', {
    get: deprecate(() => target.channel, CHANNEL_DEPRECATION, 'DEP0129'),
    set: deprecate((value: Control | null) => {
      target.channel = value;
    }, CHANNEL_DEPRECATION, 'DEP0129'),
    configurable: true,
    enumerable: false,
  });
  target._handleQueue = null;
  target._pendingMessage = null;

  const emit = (event: string, message: unknown, handle: unknown) => {
    if (event === 'internalMessage' || target.listenerCount('message') > 0) {
      target.emit(event, message, handle);
      return;
    }
    control.pending.push([event, message, handle]);
  };

  /**
   * Node's handleMessage: the event a tick later, nothing once the channel
   * is gone. handle: the object made of a received handle, or for a
   * NODE_HANDLE message its raw fd (closed here if nobody will take it).
   */
  const deliver = (message: unknown, handle: unknown, internal: boolean) => {
    if (!target.channel) {
      if (typeof handle === 'number') binding.closeFd(handle);
      return;
    }
    process.nextTick(emit, internal ? 'internalMessage' : 'message', message, handle);
  };

  const closePending = () => {
    const p = target._pendingMessage;
    target._pendingMessage = null;
    p?.handle.close();
  };

  target.on('internalMessage', (message: { cmd: string; type?: HandleType; msg?: unknown }, fd?: number) => {
    if (message.cmd === 'NODE_HANDLE_ACK' || message.cmd === 'NODE_HANDLE_NACK') {
      const pending = target._pendingMessage;
      if (pending) {
        if (message.cmd === 'NODE_HANDLE_ACK') closePending();
        else if (pending.retransmissions++ === MAX_HANDLE_RETRANSMISSIONS) {
          closePending();
          process.emitWarning('Handle did not reach the receiving process correctly', 'SentHandleNotReceivedWarning');
        } else {
          // The same bytes with the same fd again (Node resends its pending message).
          const r = socket.write(pending.wire, pending.fd, nop);
          if (r.err !== 0) closePending();
          return;
        }
      }
      const queue = target._handleQueue ?? [];
      target._handleQueue = null;
      for (const q of queue) target._send(q.message, q.handle, q.options, q.callback);
      // A disconnect() that waited for the queue.
      if (!target.connected && target.channel && !target._handleQueue) target._disconnect();
      return;
    }
    if (message.cmd !== 'NODE_HANDLE') return;
    if (fd === undefined) {
      target._send({ cmd: 'NODE_HANDLE_NACK' }, null, true);
      return;
    }
    // Acknowledged even if the conversion fails: the fd arrived. Not the
    // user's send: no 'error' if the other side is gone meanwhile.
    target._send({ cmd: 'NODE_HANDLE_ACK' }, null, true);
    receiveHandle(target, message as unknown as HandleMessage, fd, (handle) => deliver(message.msg, handle, isInternal(message.msg)));
  });

  // A 'message' listener added later still gets what came before it (Node).
  target.on('newListener', () => {
    process.nextTick(() => {
      if (!target.channel || target.listenerCount('message') === 0) return;
      const messages = control.pending;
      if (messages.length === 0) return;
      control.pending = [];
      for (const [event, message, handle] of messages) target.emit(event, message, handle);
    });
  });

  target.send = function send(message: unknown, handle?: unknown, options?: unknown, callback?: unknown): boolean {
    if (typeof handle === 'function') {
      callback = handle;
      handle = undefined;
      options = undefined;
    } else if (typeof options === 'function') {
      callback = options;
      options = undefined;
    } else if (options !== undefined) {
      validateObject(options, 'options');
    }
    const opts: SendOptions = { swallowErrors: false, ...(options as SendOptions | undefined) };
    if (target.connected) return target._send(message, handle, opts, callback as Callback | undefined);
    const ex = ipcChannelClosed();
    if (typeof callback === 'function') process.nextTick(callback as Callback, ex);
    else process.nextTick(() => target.emit('error', ex));
    return false;
  };

  target._send = function _send(message: unknown, handle: unknown, options: SendOptions | boolean | undefined, callback?: Callback): boolean {
    if (message === undefined) throw codedError(TypeError, 'ERR_MISSING_ARGS', 'The "message" argument must be specified');
    if (typeof message !== 'string' && typeof message !== 'object' && typeof message !== 'number' && typeof message !== 'boolean') {
      throw invalidArgType('message', ['string', 'object', 'number', 'boolean'], message);
    }
    const opts: SendOptions = typeof options === 'boolean' ? { swallowErrors: options } : options ?? {};
    let wire: unknown = message;
    let wrap: HandleWrap | undefined;
    let handleFd = -1;
    /** A net.Socket sent without keepOpen: its handle is closed at the ACK, or at once if it could not go. */
    let closeAtAck = false;
    if (handle) {
      const type = handleType(handle);
      if (target._handleQueue) {
        target._handleQueue.push({ callback, handle, options: opts, message });
        return target._handleQueue.length === 1;
      }
      const hm: HandleMessage = { cmd: 'NODE_HANDLE', type, msg: message };
      const sent = sendHandle(target, state, hm, handle, opts);
      if (sent) {
        wire = hm;
        wrap = sent.wrap;
        handleFd = sent.fd;
        closeAtAck = sent.closeAtAck;
      }
    } else if (target._handleQueue && !(isInternal(message) && (message.cmd === 'NODE_HANDLE_ACK' || message.cmd === 'NODE_HANDLE_NACK'))) {
      // Behind a handle still waiting for its ACK: in order.
      target._handleQueue.push({ callback, handle: null, options: opts, message });
      return target._handleQueue.length === 1;
    }

    let data: Buffer;
    try {
      data = framing.encode(wire);
    } catch (err) {
      if (closeAtAck) wrap!.close();
      throw err;
    }
    let async = false;
    const done = (errno: number) => {
      if (async) control.unrefCounted();
      if (typeof callback !== 'function') return;
      // Node calls back with null; a write that failed after it was
      // queued (the child went away) says so here.
      callback(errno === 0 || errno === -ECANCELED ? null : new SystemError(errno, 'write'));
    };
    const r = socket.write(data, handleFd, done);
    if (r.err === 0) {
      if (wrap) {
        // Everything else waits for this handle's ACK (one in flight at a time).
        target._handleQueue ??= [];
        if (closeAtAck) target._pendingMessage = { wire: data, handle: wrap, fd: handleFd, callback, retransmissions: 0 };
      }
      if (r.async) {
        async = true;
        control.refCounted();
      } else if (handleFd >= 0) {
        // libuv completes a write that carries a handle asynchronously even
        // when it went out at once: Node's callback comes in a later turn.
        async = true;
        control.refCounted();
        setImmediate(done, 0);
      } else if (typeof callback === 'function') process.nextTick(callback, null);
    } else {
      if (closeAtAck) wrap!.close();
      if (!opts.swallowErrors) {
        const ex = new SystemError(r.err, 'write');
        if (typeof callback === 'function') process.nextTick(callback, ex);
        else process.nextTick(() => target.emit('error', ex));
      }
    }
    return socket.writeQueueSize < HIGH_WATER;
  };

  target.connected = true;

  target.disconnect = function disconnect(): void {
    if (!target.connected) {
      target.emit('error', codedError(Error, 'ERR_IPC_DISCONNECTED', 'IPC channel is already disconnected'));
      return;
    }
    target.connected = false;
    // Queued handles go first; the last ACK disconnects.
    if (!target._handleQueue) target._disconnect();
  };

  target._disconnect = function _disconnect(): void {
    if (!target.channel) return;
    target.channel = null;
    if (target._pendingMessage) closePending();
    let fired = false;
    const finish = () => {
      if (fired) return;
      fired = true;
      socket.close();
      target.emit('disconnect');
      reportClosed();
    };
    // A message half read is delivered first (Node waits for it too);
    // if the channel ends before it completes, the end finishes.
    if (framing.buffering && !atEof) {
      waitingFinish = finish;
      target.once('message', finish);
      target.once('internalMessage', finish);
      return;
    }
    process.nextTick(finish);
  };

  return control;
}

/** Whether the channel still has something to deliver: not at EOF, or a message half read. */
export function channelInUse(target: IpcTarget): boolean {
  const state = channelState.get(target);
  return state !== undefined && !state.socket.closed;
}

function handleType(handle: unknown): HandleType {
  if (handle instanceof net.Socket) return 'net.Socket';
  if (handle instanceof net.Server) return 'net.Server';
  const name = wrapName(handle);
  if ((name === 'TCP' || name === 'Pipe') && isNodeWrap(handle, 'stream')) return 'net.Native';
  if (handle instanceof dgram.Socket) return 'dgram.Socket';
  if (name === 'UDP' && isNodeWrap(handle, 'udp')) return 'dgram.Native';
  throw codedError(TypeError, 'ERR_INVALID_HANDLE_TYPE', 'This handle type cannot be sent');
}

/** The prototypes of Node's own stream wraps (TCP and Pipe share LibuvStreamWrap) and UDP wrap, learnt once from real ones. */
const wrapProtos: { stream?: object; udp?: object } = {};

/**
 * Whether a raw handle is one of Node's own (its classes are internal, so
 * a look-alike named TCP with an fd property would otherwise send any fd
 * of this process): its prototype chain must hold the real one's.
 */
function isNodeWrap(handle: unknown, kind: 'stream' | 'udp'): boolean {
  if (wrapProtos[kind] === undefined) {
    if (kind === 'stream') {
      const pair = binding.socketPair();
      if (typeof pair === 'number') return false;
      binding.closeFd(pair[1]);
      const socket = new net.Socket({ fd: pair[0], readable: false, writable: false });
      binding.releaseFd(pair[0]);
      const pipe = (socket as unknown as { _handle: object })._handle;
      wrapProtos.stream = Object.getPrototypeOf(Object.getPrototypeOf(pipe)) as object;
      socket.destroy();
    } else {
      const socket = dgram.createSocket('udp4');
      const udp = dgramHandle(socket);
      if (udp) wrapProtos.udp = Object.getPrototypeOf(udp) as object;
      socket.close();
    }
  }
  const proto = wrapProtos[kind];
  return proto !== undefined && typeof handle === 'object' && handle !== null && Object.prototype.isPrototypeOf.call(proto, handle as object);
}

/**
 * The fd to send for a handle, as Node's handleConversion[type].send: a
 * net.Socket is detached from its JavaScript object (unless keepOpen) and
 * closed at the ACK; a server or a UDP socket stays open here. undefined:
 * nothing to send (a socket already sent, a server not listening), and the
 * message goes without it, as in Node.
 */
function sendHandle(target: IpcTarget, state: ChannelState, message: HandleMessage, handle: unknown, options: SendOptions): { wrap: HandleWrap; fd: number; closeAtAck: boolean } | undefined {
  const valid = (wrap: HandleWrap | null | undefined) => (wrap && typeof wrap.fd === 'number' && wrap.fd >= 0 ? wrap : undefined);
  switch (message.type) {
    case 'net.Native':
    case 'dgram.Native': {
      const wrap = valid(handle as HandleWrap);
      return wrap && { wrap, fd: wrap.fd, closeAtAck: false };
    }
    case 'net.Server': {
      const wrap = valid((handle as net.Server & { _handle?: HandleWrap | null })._handle);
      return wrap && { wrap, fd: wrap.fd, closeAtAck: false };
    }
    case 'dgram.Socket': {
      const socket = handle as dgram.Socket & { type: string };
      message.dgramType = socket.type;
      const wrap = valid(dgramHandle(socket));
      return wrap && { wrap, fd: wrap.fd, closeAtAck: false };
    }
    case 'net.Socket': {
      const socket = handle as net.Socket & { _handle?: HandleWrap | null; server?: net.Server & ServerInternals };
      const wrap = valid(socket._handle);
      if (!wrap) return undefined;
      const server = socket.server;
      if (server) {
        // The receiving side counts the server's sockets for getConnections()/close().
        message.key = server._connectionKey;
        const first = state.sockets.send[message.key] === undefined;
        const list = socketListSend(target, state, message.key);
        if (first && typeof server._setupWorker === 'function') server._setupWorker(list);
        if (!options.keepOpen && typeof server._connections === 'number') server._connections--;
      }
      if (!options.keepOpen) {
        wrap.onread = nop;
        socket._handle = null;
        socket.setTimeout(0);
        releaseHttpParser(socket);
      }
      return { wrap, fd: wrap.fd, closeAtAck: !options.keepOpen };
    }
  }
}

/**
 * A socket of an HTTP server leaves with its parser and response released,
 * as Node does on sending it (else both stay tied to a socket that is gone).
 */
function releaseHttpParser(socket: net.Socket): void {
  const s = socket as net.Socket & { parser?: unknown; _httpMessage?: { detachSocket?: (socket: net.Socket) => void } | null };
  if (!s.parser) return;
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- Node's own module for this (public, undocumented), loaded only when needed
  const common = require('node:_http_common') as { freeParser?: (parser: unknown, req: unknown, socket: net.Socket) => void; HTTPParser?: new () => unknown };
  if (typeof common.freeParser !== 'function' || typeof common.HTTPParser !== 'function' || !(s.parser instanceof common.HTTPParser)) return;
  common.freeParser(s.parser, null, socket);
  s._httpMessage?.detachSocket?.(socket);
}

interface ServerInternals {
  _connectionKey: string;
  _connections: number;
  _setupWorker?: (list: EventEmitter) => void;
}

/** A handle that came with a NODE_HANDLE message, made the object its type names (Node's handleConversion[type].got). */
function receiveHandle(target: IpcTarget, message: HandleMessage, fd: number, emit: (handle: unknown) => void): void {
  // The fd stays tracked as the environment's until a socket owns it,
  // then is released: a teardown in between closes it once (its check of
  // dev:ino skips a number the socket's close already reused).
  const owned = () => binding.releaseFd(fd);
  try {
    switch (message.type) {
      case 'net.Server': {
        const server = new net.Server();
        server.listen({ fd }, () => emit(server));
        owned();
        return;
      }
      case 'net.Socket': {
        const socket = new net.Socket({ fd, readable: true, writable: true });
        owned();
        if (message.key) {
          const state = channelState.get(target);
          if (state) socketListReceive(target, state, message.key).add(socket);
        }
        emit(socket);
        return;
      }
      case 'dgram.Socket': {
        const socket = dgram.createSocket(message.dgramType === 'udp6' ? 'udp6' : 'udp4');
        socket.bind({ fd } as dgram.BindOptions, () => emit(socket));
        owned();
        return;
      }
      case 'net.Native': {
        // Node hands over its raw TCP/Pipe wrap; from userland the way to
        // get one is a net.Socket's, taken from it before it reads.
        const socket = new net.Socket({ fd, readable: false, writable: false });
        owned();
        const wrap = (socket as unknown as { _handle: HandleWrap | null })._handle;
        (socket as unknown as { _handle: HandleWrap | null })._handle = null;
        emit(wrap);
        return;
      }
      case 'dgram.Native': {
        const socket = dgram.createSocket(message.dgramType === 'udp6' ? 'udp6' : 'udp4');
        socket.bind({ fd } as dgram.BindOptions, () => emit(dgramHandle(socket)));
        owned();
        return;
      }
      default:
        binding.closeFd(fd);
        target.emit('error', codedError(TypeError, 'ERR_INVALID_HANDLE_TYPE', `This handle type cannot be received: ${String((message as { type?: unknown }).type)}`));
    }
  } catch (err) {
    binding.closeFd(fd);
    target.emit('error', err);
  }
}

// ---- the sockets of a server shared with a child (Node's internal/socket_list.js)

/** The parent's view of a server's sockets sent to one child: asks the child for their count and close. */
class SocketListSend extends EventEmitter {
  constructor(
    private readonly child: IpcTarget,
    readonly key: string,
  ) {
    super();
    child.once('exit', () => this.emit('exit', this));
  }

  #request(msg: object, cmd: string, swallowErrors: boolean, callback: (err: Error | null, reply?: { count?: number }) => void): void {
    const child = this.child;
    const onreply = (reply: { cmd?: string; key?: string; count?: number }) => {
      if (!(reply.cmd === cmd && reply.key === this.key)) return;
      child.removeListener('disconnect', onclose);
      child.removeListener('internalMessage', onreply);
      callback(null, reply);
    };
    const onclose = () => {
      child.removeListener('internalMessage', onreply);
      callback(codedError(Error, 'ERR_CHILD_CLOSED_BEFORE_REPLY', 'Child closed before reply received'));
    };
    if (!child.connected) return onclose();
    child._send(msg, undefined, swallowErrors);
    child.once('disconnect', onclose);
    child.on('internalMessage', onreply);
  }

  close(callback: (err: Error | null) => void): void {
    this.#request({ cmd: 'NODE_SOCKET_NOTIFY_CLOSE', key: this.key }, 'NODE_SOCKET_ALL_CLOSED', true, callback);
  }

  getConnections(callback: (err: Error | null, count?: number) => void): void {
    this.#request({ cmd: 'NODE_SOCKET_GET_COUNT', key: this.key }, 'NODE_SOCKET_COUNT', false, (err, reply) => {
      if (err) return callback(err);
      callback(null, reply?.count);
    });
  }
}

/** The receiving side of a server's sockets: answers the sender's count and close requests. */
class SocketListReceive extends EventEmitter {
  connections = 0;
  constructor(
    child: IpcTarget,
    readonly key: string,
  ) {
    super();
    const onempty = () => {
      if (!child.connected) return;
      child._send({ cmd: 'NODE_SOCKET_ALL_CLOSED', key: this.key }, undefined, true);
    };
    child.on('internalMessage', (msg: { cmd?: string; key?: string }) => {
      if (msg.key !== this.key) return;
      if (msg.cmd === 'NODE_SOCKET_NOTIFY_CLOSE') {
        if (this.connections === 0) return onempty();
        this.once('empty', onempty);
      } else if (msg.cmd === 'NODE_SOCKET_GET_COUNT') {
        if (!child.connected) return;
        child._send({ cmd: 'NODE_SOCKET_COUNT', key: this.key, count: this.connections }, undefined, false);
      }
    });
  }

  add(socket: net.Socket): void {
    this.connections++;
    socket.once('close', () => {
      this.connections--;
      if (this.connections === 0) this.emit('empty', this);
    });
  }
}

function socketListSend(target: IpcTarget, state: ChannelState, key: string): SocketListSend {
  return (state.sockets.send[key] ??= new SocketListSend(target, key));
}

function socketListReceive(target: IpcTarget, state: ChannelState, key: string): SocketListReceive {
  return (state.sockets.got[key] ??= new SocketListReceive(target, key));
}
