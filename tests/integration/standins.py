"""Loopback stand-ins for the services of a confidential VM's trust chain,
speaking exactly their wire formats (nothing free implements them that can
be installed here):

  KeyProvider  dstack's local key provider: TCP, a 4-byte big-endian length
               then JSON {"quote": [bytes]}, answered the same way with
               {"encrypted_key": [...], "provider_quote": [...]}; modes
               answer, slow, wrong, silent, close
  Kms          dstack's KMS RPC: POST /prpc/GetAppEnvEncryptPubKey?json
               {"app_id": hex} -> {"public_key", "signature", "timestamp",
               "signature_v1"} (hex), signed with a real secp256k1 key by
               kms-sign (plugins/kms/kms_sign_tool.c); a real X25519 key
               per app so a test can decrypt what was encrypted to it
  Gateway      cvmm's registration API (plugins/gateway/gateway.c):
               POST /v1/cvmm/instances, DELETE /v1/cvmm/instances/<id>;
               mode "down": accepts connections and never answers
"""
import http.server
import json
import os
import socket
import socketserver
import struct
import subprocess
import threading
import time

BUILD = os.environ.get("CVMM_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
KMS_SIGN = os.path.join(BUILD, "plugins", "kms", "kms-sign")


def _recv_exact(c, n):
    b = b""
    while len(b) < n:
        k = c.recv(n - len(b))
        if not k:
            raise EOFError
        b += k
    return b


class KeyProvider:
    def __init__(self, mode="answer"):
        self.mode = mode
        self.quotes = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        try:
            n = struct.unpack(">I", _recv_exact(c, 4))[0]
            req = json.loads(_recv_exact(c, n))
            self.quotes.append(bytes(req["quote"]))
            if self.mode == "silent":
                time.sleep(30)
                return
            if self.mode == "close":
                return
            if self.mode == "slow":
                time.sleep(3)
            if self.mode == "wrong":
                body = b'{"encrypted_key": "not a byte list"}'
            else:
                body = json.dumps({"encrypted_key": list(b"sealed:" + self.quotes[-1][:8]),
                                   "provider_quote": [0xAB, 0xCD]}).encode()
            c.sendall(struct.pack(">I", len(body)) + body)
        except (EOFError, OSError, ValueError):
            pass
        finally:
            c.close()

    def close(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept(): the port is free
        except OSError:
            pass
        self.sock.close()


def signer_of(priv_hex):
    """(address, compressed public key) of a secp256k1 private key."""
    out = subprocess.run([KMS_SIGN, "address", priv_hex], check=True, capture_output=True,
                         text=True).stdout.split()
    return out[0], out[1]


def _sign(priv_hex, app_id_hex, pub_hex, ts=None):
    args = [KMS_SIGN, "sign", priv_hex, app_id_hex, pub_hex] + ([str(ts)] if ts is not None else [])
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class Kms:
    """A KMS signing with priv_hex (a real secp256k1 key)."""

    def __init__(self, priv_hex, legacy_only=False, ts_offset=0):
        """ts_offset: seconds added to the time it signs as its timestamp
        (an old or a future signature_v1)."""
        from cryptography.hazmat.primitives.asymmetric import x25519
        self.priv = priv_hex
        self.keys = {}  # app_id hex -> X25519 private key
        self.requests = []
        kms = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(n) or b"{}")
                kms.requests.append((self.path, body))
                if self.path not in ("/prpc/GetAppEnvEncryptPubKey?json",
                                     "/prpc/KMS.GetAppEnvEncryptPubKey?json"):
                    self.send_response(404)
                    self.end_headers()
                    return
                app = body["app_id"]
                k = kms.keys.setdefault(app, x25519.X25519PrivateKey.generate())
                from cryptography.hazmat.primitives import serialization as ser
                pub = k.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw).hex()
                ts = int(time.time()) + ts_offset
                ans = {"public_key": pub, "signature": _sign(kms.priv, app, pub)}
                if not legacy_only:
                    ans.update(timestamp=ts, signature_v1=_sign(kms.priv, app, pub, ts))
                data = json.dumps(ans).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.srv = _Server(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def decrypt(self, app_id, blob_hex):
        """dstack's decryption (what the guest does with env_crypt_key)."""
        from cryptography.hazmat.primitives.asymmetric import x25519
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        data = bytes.fromhex(blob_hex)
        shared = self.keys[app_id].exchange(x25519.X25519PublicKey.from_public_bytes(data[:32]))
        return AESGCM(shared).decrypt(data[32:44], data[44:], None)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class Gateway:
    def __init__(self, mode="up"):
        self.mode = mode
        self.calls = []  # (method, path, body, monotonic time)
        self.instances = {}
        if mode == "down":
            # Connections complete (the kernel's backlog) but nobody ever
            # reads or answers: the worst outage for a client.
            self.sock = socket.socket()
            self.sock.bind(("127.0.0.1", 0))
            self.sock.listen(64)
            self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
            return
        gw = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _answer(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(n) or b"{}")
                gw.calls.append(("POST", self.path, body, time.monotonic()))
                if self.path != "/v1/cvmm/instances":
                    return self._answer(404, {})
                gw.instances[body["instance_id"]] = body
                self._answer(200, {"ok": True})

            def do_DELETE(self):
                gw.calls.append(("DELETE", self.path, None, time.monotonic()))
                inst = self.path.rsplit("/", 1)[-1]
                if gw.instances.pop(inst, None) is None:
                    return self._answer(404, {})
                self._answer(200, {"ok": True})

        self.srv = _Server(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        if self.mode == "down":
            self.sock.close()
        else:
            self.srv.shutdown()
            self.srv.server_close()
