"""A real OpenSSH server (Debian's ``openssh-server``) for SFTP delivery tests: started on a
free loopback port with a config of its own, the login user chrooted into a temporary folder
and limited to ``internal-sftp``, as a healthcare partner's drop is set up."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from snapsync.local import free_port

SSHD = "/usr/sbin/sshd"
#: The login user: an unprivileged account every Debian system has.
USER = "nobody"


@dataclass
class SftpServer:
    root: Path  # the chroot (root-owned); the user writes under ``drop``
    port: int
    host_key: str  # the server's public host key line ("ssh-ed25519 AAAA...")
    authorized: Path
    proc: subprocess.Popen

    @property
    def drop(self) -> Path:
        return self.root / "drop"

    def url(self, path: str = "/drop") -> str:
        return f"sftp://{USER}@127.0.0.1:{self.port}{path}"

    def authorize(self, public_key_line: str) -> None:
        with open(self.authorized, "a") as f:
            f.write(public_key_line.strip() + "\n")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.root.parent, ignore_errors=True)


def start_sftp_server() -> SftpServer:
    """sshd on a free loopback port. Its folder lives under /run: every component of a chroot
    must be root-owned and not writable by others (/tmp is), and the login user must reach
    its authorized keys (not under /root, 0700)."""
    base = Path("/run/snapsync-sshd")
    base.mkdir(parents=True, exist_ok=True, mode=0o755)
    os.chmod(base, 0o755)
    top = Path(tempfile.mkdtemp(dir=base))
    os.chmod(top, 0o755)
    root, etc = top / "chroot", top / "etc"
    root.mkdir(mode=0o755)
    etc.mkdir(mode=0o755)  # the login user reads authorized_keys here (the host key stays 0600)
    nobody = pwd.getpwnam(USER)
    (root / "drop").mkdir()
    os.chown(root / "drop", nobody.pw_uid, nobody.pw_gid)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(etc / "host_ed25519")], check=True)
    authorized = etc / "authorized_keys"
    authorized.touch(mode=0o644)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation folder
    port = free_port()
    (etc / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {etc / "host_ed25519"}
PidFile none
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile {authorized}
StrictModes no
AllowUsers {USER}
ChrootDirectory {root}
ForceCommand internal-sftp
Subsystem sftp internal-sftp
AllowTcpForwarding no
X11Forwarding no
LogLevel ERROR
""")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(etc / "sshd_config")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"sshd did not start: {proc.stderr.read().decode()[-1000:]}")
            time.sleep(0.05)
    host_key = " ".join((etc / "host_ed25519.pub").read_text().split()[:2])
    return SftpServer(root, port, host_key, authorized, proc)
