"""qfwire: a small pure-Python client for the dqlite wire protocol.

Written from the byte-level specification (shared/reference/wire-protocol.md,
sections 1, 4.1-4.9, 5, 6, 7 and 8.1) with nothing but `struct` and
`socket`, so that the tests and `quorafs bench --wire` can drive a quorafs
node and a real dqlite node with one and the same client.

    import qfwire
    c = qfwire.connect(["127.0.0.1:9001", "127.0.0.1:9002"], "demo")
    c.exec_sql("CREATE TABLE IF NOT EXISTS t (k TEXT, v BLOB)")
    last_id, changes = c.exec_sql("INSERT INTO t VALUES(?, ?)",
                                  ("a", b"\\x00\\x01"))
    cols, rows = c.query_sql("SELECT k, v FROM t WHERE k = ?", ("a",))
    c.close()

What it covers: the handshake (protocol version 1, or the legacy version),
LEADER, CLIENT, OPEN, EXEC_SQL and QUERY_SQL with parameters (int -> INTEGER,
float -> FLOAT, str -> TEXT, bytes -> BLOB, None -> NULL, bool -> BOOLEAN),
PREPARE / EXEC / QUERY / FINALIZE, INTERRUPT, CLUSTER and DESCRIBE, and
decoding of FAILURE, SERVER, WELCOME, DB, STMT, RESULT, EMPTY, SERVERS,
METADATA and ROWS (several batches: PART ... DONE).  One connection carries
one request at a time, as the protocol wants (1.4); it stays open across
requests.

Errors: a FAILURE response raises `Failure` (code, message); the connection
stays usable.  A broken or nonsensical stream raises `WireError` (or an
OSError from the socket) and the connection is closed: make a new one.
`Failure.bad_conn` is true for the codes that go-dqlite treats as a broken
connection (7.3: not leader, leadership lost, no database, code 0)."""
import socket
import struct
import time

VERSION = 1
VERSION_LEGACY = 0x86104DD760433FE5

# Request types (2.1).
LEADER, CLIENT, HEARTBEAT, OPEN, PREPARE, EXEC, QUERY, FINALIZE, \
    EXEC_SQL, QUERY_SQL, INTERRUPT = range(11)
CLUSTER, DESCRIBE = 16, 18

# Response types (2.2).
R_FAILURE, R_SERVER, R_WELCOME, R_SERVERS, R_DB, R_STMT, R_RESULT, \
    R_ROWS, R_EMPTY, R_FILES, R_METADATA = range(11)
RESPONSE_NAMES = ("FAILURE", "SERVER", "WELCOME", "SERVERS", "DB", "STMT",
                  "RESULT", "ROWS", "EMPTY", "FILES", "METADATA")

# Value types (6.2).
INTEGER, FLOAT, TEXT, BLOB, NULL = 1, 2, 3, 4, 5
UNIXTIME, ISO8601, BOOLEAN = 9, 10, 11

DONE = 0xFFFFFFFFFFFFFFFF
PART = 0xEEEEEEEEEEEEEEEE

# FAILURE codes go-dqlite maps to driver.ErrBadConn (7.3).
BAD_CONN_CODES = frozenset((10250, 10506, 8202, 8458, 12, 0))
NOT_LEADER = 10250
LEADERSHIP_LOST = 10506

DEFAULT_MAX_MESSAGE = 64 << 20

_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_HDR = struct.Struct("<IBBH")
_ZERO = bytes(8)


class WireError(Exception):
    """The connection is unusable: transport or protocol error."""


class Failure(Exception):
    """A FAILURE response: the request failed, the connection is fine."""

    def __init__(self, code, message):
        super().__init__("%s (%d)" % (message, code))
        self.code = code
        self.message = message

    @property
    def bad_conn(self):
        return self.code in BAD_CONN_CODES


# ---------------------------------------------------------------------------
# encoding (1.5, 6.1)

def _pad(n):
    return -n & 7


def enc_u64(v):
    return _U64.pack(v & 0xFFFFFFFFFFFFFFFF)


def enc_text(s):
    b = s.encode() if isinstance(s, str) else bytes(s)
    if b"\0" in b:
        raise ValueError("text with a NUL byte cannot be sent")
    return b + bytes(1 + _pad(len(b) + 1))


def enc_blob(b):
    b = bytes(b)
    return _U64.pack(len(b)) + b + bytes(_pad(len(b)))


def enc_params(params):
    """The revision-0 parameter tuple; b"" for no parameters (6.1)."""
    n = len(params)
    if n == 0:
        return b""
    if n > 255:
        raise ValueError("more than 255 parameters")
    types = bytearray([n])
    vals = []
    for p in params:
        if p is None:
            types.append(NULL)
            vals.append(_ZERO)
        elif isinstance(p, bool):
            types.append(BOOLEAN)
            vals.append(_U64.pack(1 if p else 0))
        elif isinstance(p, int):
            types.append(INTEGER)
            vals.append(_I64.pack(p))
        elif isinstance(p, float):
            types.append(FLOAT)
            vals.append(_F64.pack(p))
        elif isinstance(p, str):
            types.append(TEXT)
            vals.append(enc_text(p))
        elif isinstance(p, (bytes, bytearray, memoryview)):
            types.append(BLOB)
            vals.append(enc_blob(p))
        else:
            raise TypeError("cannot send a parameter of type %s"
                            % type(p).__name__)
    types += bytes(_pad(len(types)))
    return bytes(types) + b"".join(vals)


# ---------------------------------------------------------------------------
# decoding

class Reader:
    """Reads fields from one message body."""

    __slots__ = ("buf", "off")

    def __init__(self, buf):
        self.buf = buf
        self.off = 0

    def left(self):
        return len(self.buf) - self.off

    def _need(self, n, what):
        if self.off + n > len(self.buf):
            raise WireError("truncated body reading %s at offset %d of %d"
                            % (what, self.off, len(self.buf)))

    def u64(self):
        self._need(8, "u64")
        v = _U64.unpack_from(self.buf, self.off)[0]
        self.off += 8
        return v

    def i64(self):
        self._need(8, "i64")
        v = _I64.unpack_from(self.buf, self.off)[0]
        self.off += 8
        return v

    def f64(self):
        self._need(8, "double")
        v = _F64.unpack_from(self.buf, self.off)[0]
        self.off += 8
        return v

    def u32pair(self):
        self._need(8, "u32 pair")
        a, b = struct.unpack_from("<II", self.buf, self.off)
        self.off += 8
        return a, b

    def text(self):
        end = self.buf.find(b"\0", self.off)
        if end < 0:
            raise WireError("text without a NUL at offset %d" % self.off)
        s = bytes(self.buf[self.off:end]).decode("utf-8", "replace")
        n = end + 1 - self.off
        self.off += n + _pad(n)
        if self.off > len(self.buf):
            raise WireError("text padding runs past the body")
        return s

    def blob(self):
        n = self.u64()
        self._need(n + _pad(n), "blob of %d bytes" % n)
        b = bytes(self.buf[self.off:self.off + n])
        self.off += n + _pad(n)
        return b

    def value(self, t):
        if t == INTEGER or t == UNIXTIME:
            return self.i64()
        if t == FLOAT:
            return self.f64()
        if t == TEXT or t == ISO8601:
            return self.text()
        if t == BLOB:
            return self.blob()
        if t == NULL:
            self.u64()
            return None
        if t == BOOLEAN:
            return self.u64() != 0
        raise WireError("unknown value type %d" % t)


def decode_rows(body):
    """One ROWS body -> (columns, rows, more): more is True after PART,
    False after DONE (6.3)."""
    r = Reader(body)
    n = r.u64()
    if n == 0 or n > 1 << 20:
        raise WireError("ROWS with %d columns" % n)
    cols = [r.text() for _ in range(n)]
    hdr_len = ((n + 1) // 2 + 7) & ~7
    rows = []
    buf = r.buf
    while True:
        if r.left() < 8:
            raise WireError("ROWS body ends without a DONE or PART marker")
        w = _U64.unpack_from(buf, r.off)[0]
        if w == DONE or w == PART:
            r.off += 8
            if r.left():
                raise WireError("%d bytes after the ROWS end marker"
                                % r.left())
            return cols, rows, w == PART
        r._need(hdr_len, "row header")
        hdr = buf[r.off:r.off + hdr_len]
        r.off += hdr_len
        row = []
        for i in range(n):
            b = hdr[i >> 1]
            row.append(r.value((b >> 4) if i & 1 else (b & 0x0F)))
        rows.append(tuple(row))


def decode_failure(body):
    r = Reader(body)
    code = r.u64()
    msg = r.text() if r.left() else ""
    return Failure(code, msg)


# ---------------------------------------------------------------------------
# addresses and the connection

def parse_address(addr):
    """'host:port' or '[v6]:port' -> (host, port)."""
    if addr.startswith("["):
        host, _, rest = addr[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError("bad address %r (want HOST:PORT)" % addr)
    return host, int(port)


class Conn:
    """One client connection.  Not thread-safe: one thread at a time."""

    def __init__(self, address, timeout=10.0, version=VERSION,
                 max_message=DEFAULT_MAX_MESSAGE):
        self.address = address
        self.version = version
        self.max_message = max_message
        self.db_open = False
        self.sock = None
        host, port = parse_address(address)
        try:
            self.sock = socket.create_connection((host, port), timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.settimeout(timeout)
            self.sock.sendall(_U64.pack(version))  # handshake: one word
        except OSError:
            self.close()
            raise
        self._rbuf = bytearray()

    # -- plumbing --
    def close(self):
        s, self.sock = self.sock, None
        if s is not None:
            try:
                s.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def closed(self):
        return self.sock is None

    def settimeout(self, t):
        if self.sock is not None:
            self.sock.settimeout(t)

    def send(self, mtype, body, split=False):
        """Send one request.  @split writes header and body separately, as
        go-dqlite does (1.4)."""
        if self.sock is None:
            raise WireError("connection closed")
        if len(body) % 8:
            raise ValueError("body of %d bytes is not word-aligned"
                             % len(body))
        hdr = _HDR.pack(len(body) // 8, mtype, 0, 0)
        try:
            if split:
                self.sock.sendall(hdr)
                self.sock.sendall(body)
            else:
                self.sock.sendall(hdr + body)
        except BaseException:
            self.close()
            raise

    def _recv_exact(self, n):
        buf = self._rbuf
        while len(buf) < n:
            chunk = self.sock.recv(max(65536, n - len(buf)))
            if not chunk:
                raise WireError("connection closed by %s" % self.address)
            buf += chunk
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def recv(self):
        """Read one response -> (type, body bytes)."""
        if self.sock is None:
            raise WireError("connection closed")
        try:
            words, mtype, _schema, _extra = _HDR.unpack(self._recv_exact(8))
            if words * 8 > self.max_message:
                raise WireError("response of %d words is over the cap"
                                % words)
            return mtype, self._recv_exact(words * 8)
        except BaseException:
            self.close()
            raise

    def expect(self, want):
        """Read one response of type @want; FAILURE raises Failure, any
        other type is a protocol error (the connection is closed)."""
        mtype, body = self.recv()
        if mtype == want:
            return body
        if mtype == R_FAILURE:
            raise decode_failure(body)
        self.close()
        raise WireError("expected %s, got response type %d"
                        % (RESPONSE_NAMES[want], mtype))

    def call(self, mtype, body, want):
        self.send(mtype, body)
        return self.expect(want)

    def _parsed(self, body, fn):
        try:
            return fn(Reader(body))
        except WireError:
            self.close()
            raise

    # -- requests --
    def leader(self):
        """LEADER -> (id, address); (0, "") when none is known.  On a
        legacy connection the id is 0."""
        body = self.call(LEADER, _ZERO, R_SERVER)
        if self.version == VERSION_LEGACY:
            return self._parsed(body, lambda r: (0, r.text()))
        return self._parsed(body, lambda r: (r.u64(), r.text()))

    def client(self, client_id=0):
        """CLIENT -> the advertised heartbeat timeout in ms."""
        return self._parsed(self.call(CLIENT, enc_u64(client_id), R_WELCOME),
                            Reader.u64)

    def open(self, name, flags=0, vfs="volatile"):
        self._parsed(self.call(OPEN, enc_text(name) + enc_u64(flags)
                               + enc_text(vfs), R_DB), Reader.u32pair)
        self.db_open = True
        return 0

    def exec_sql(self, sql, params=()):
        """EXEC_SQL -> (last_insert_id, rows_affected)."""
        body = self.call(EXEC_SQL, _ZERO + enc_text(sql) + enc_params(params),
                         R_RESULT)
        return self._parsed(body, lambda r: (r.u64(), r.u64()))

    def query_sql(self, sql, params=()):
        """QUERY_SQL -> (columns, rows) with every batch read."""
        self.send(QUERY_SQL, _ZERO + enc_text(sql) + enc_params(params))
        return self._read_rows()

    def prepare(self, sql):
        """PREPARE -> (stmt_id, n_params)."""
        body = self.call(PREPARE, _ZERO + enc_text(sql), R_STMT)
        return self._parsed(body, lambda r: (r.u32pair()[1], r.u64()))

    def exec(self, stmt_id, params=()):
        body = self.call(EXEC, struct.pack("<II", 0, stmt_id)
                         + enc_params(params), R_RESULT)
        return self._parsed(body, lambda r: (r.u64(), r.u64()))

    def query(self, stmt_id, params=()):
        self.send(QUERY, struct.pack("<II", 0, stmt_id) + enc_params(params))
        return self._read_rows()

    def finalize(self, stmt_id):
        self.call(FINALIZE, struct.pack("<II", 0, stmt_id), R_EMPTY)

    def interrupt(self):
        """INTERRUPT; reads and drops anything up to the EMPTY (6.5)."""
        self.send(INTERRUPT, _ZERO)
        while True:
            mtype, body = self.recv()
            if mtype == R_EMPTY:
                return
            if mtype == R_FAILURE:
                raise decode_failure(body)

    def query_batches(self, sql, params=()):
        """QUERY_SQL, yielding (columns, rows) per ROWS message.  Closing
        the generator early sends INTERRUPT."""
        self.send(QUERY_SQL, _ZERO + enc_text(sql) + enc_params(params))
        more = True
        try:
            while more:
                try:
                    body = self.expect(R_ROWS)
                except Failure:
                    more = False  # the stream ended with the FAILURE
                    raise
                try:
                    cols, rows, more = decode_rows(body)
                except WireError:
                    self.close()
                    raise
                yield cols, rows
        finally:
            if more and self.sock is not None:
                self.interrupt()

    def _read_rows(self):
        all_rows = []
        cols = None
        more = True
        while more:
            body = self.expect(R_ROWS)
            try:
                cols, rows, more = decode_rows(body)
            except WireError:
                self.close()
                raise
            all_rows.extend(rows)
        return cols, all_rows

    def cluster(self):
        """CLUSTER(1) -> [(id, address, role)]; role 0 voter, 1 stand-by,
        2 spare."""
        def parse(r):
            return [(r.u64(), r.text(), r.u64()) for _ in range(r.u64())]
        return self._parsed(self.call(CLUSTER, enc_u64(1), R_SERVERS), parse)

    def describe(self):
        """DESCRIBE(0) -> (failure_domain, weight)."""
        return self._parsed(self.call(DESCRIBE, _ZERO, R_METADATA),
                            lambda r: (r.u64(), r.u64()))


def connect(servers, database=None, timeout=10.0, deadline=30.0):
    """Leader discovery like go-dqlite's connector (8.1): ask each address
    in @servers for the leader, follow one redirect, send CLIENT to the
    leader and OPEN @database when given.  Retries with 200 ms .. 1 s
    backoff for up to @deadline seconds; raises WireError at the end."""
    if isinstance(servers, str):
        servers = [s for s in servers.split(",") if s]
    end = time.monotonic() + deadline
    backoff = 0.2
    errors = []
    while True:
        errors = []
        for addr in servers:
            tried = [addr]
            target = addr
            while True:
                try:
                    c = Conn(target, timeout)
                except OSError as e:
                    errors.append("%s: %s" % (target, e))
                    break
                try:
                    _, leader = c.leader()
                except (OSError, WireError, Failure) as e:
                    c.close()
                    errors.append("%s: %s" % (target, e))
                    break
                if leader == target:
                    try:
                        c.client()
                        if database is not None:
                            c.open(database)
                        return c
                    except (OSError, WireError, Failure) as e:
                        c.close()
                        errors.append("%s: %s" % (target, e))
                        break
                c.close()
                if not leader or len(tried) > 1:
                    errors.append("%s: no leader%s" % (
                        target, "" if not leader else " (names %s)" % leader))
                    break
                tried.append(leader)
                target = leader
        if time.monotonic() + backoff > end:
            raise WireError("no leader found among %s: %s"
                            % (",".join(servers), "; ".join(errors)))
        time.sleep(backoff)
        backoff = min(1.0, backoff * 2)
