"""A minimal threaded TCP server for pods whose bytes a test writes by
hand: it listens on one loopback address and port and serves each
connection on a thread of its own with the subclass's serve(conn, n), n
counting connections from 1. stop() ends the accepting; connections end
when serve returns."""
import socket
import threading


class TcpPod:
    def __init__(self, host, port):
        self.conns = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self.serve, args=(c, self.conns), daemon=True).start()

    def serve(self, c, n):
        raise NotImplementedError

    def stop(self):
        self.stopping = True
        self.sock.close()
        self.thread.join(timeout=5)
