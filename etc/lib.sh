# Shared by the etc/ measurement scripts (source it; bash).

# two_free_ports prints two free loopback TCP ports.
two_free_ports() {
	python3 -c '
import socket
ss=[socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1",0))
print(*[s.getsockname()[1] for s in ss])'
}

# target_json PORT1 PORT2 NQN MODEL SERIAL SIZE UUID prints an nvmetcli
# JSON for `mpathfs target`: one RAM namespace of SIZE (e.g. 1G) in ANA
# group 1, optimized, on two loopback ports.
target_json() {
	python3 - "$@" <<'EOF'
import json, sys
p1, p2, nqn, model, serial, size, uuid = sys.argv[1:]
port = lambda i, p: {"portid": i, "addr": {"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": p},
                     "ana_groups": [{"grpid": 1, "ana": {"state": "optimized"}}], "subsystems": [nqn]}
print(json.dumps({"ports": [port(1, p1), port(2, p2)], "subsystems": [{"nqn": nqn,
    "attr": {"allow_any_host": "1", "model": model, "serial": serial},
    "namespaces": [{"nsid": 1, "enable": 1, "ana_grpid": 1, "device": {"path": "ram:" + size, "uuid": uuid}}]}]}))
EOF
}
