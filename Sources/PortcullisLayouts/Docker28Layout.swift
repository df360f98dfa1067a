import PortcullisIR
import PortcullisNet
import PortcullisPolicy
import PortcullisSyntax

/// Docker 28.2.2 to 28.5.2 with its iptables firewaller, IPv4: FORWARD only jumps to
/// `DOCKER-USER` (created empty) and `DOCKER-FORWARD`, which holds the per-bridge accepts behind
/// `DOCKER-CT` (conntrack), `DOCKER-ISOLATION-STAGE-1/2` (no RETURN rules any more) and
/// `DOCKER-BRIDGE` (jumps to `DOCKER`). The filter `DOCKER` chain ends each bridge with a DROP
/// of everything not accepted by a published port; the raw table drops packets routed straight
/// to a container's address from outside its bridge, and remote packets to loopback publishes.
///
/// Rule order follows the daemon's history as moby's generated iptables docs (28.2.2 to 28.5.2)
/// show it. Docker 28 also writes ip6tables rules for IPv6 networks; this layout does not, so it
/// refuses IPv6 subnets and publishes on IPv6 host addresses.
public struct Docker28Layout: Layout {
    public let name = "docker-28"
    public let summary = "Docker 28.2.2-28.5.2 (iptables, IPv4): DOCKER-FORWARD, DOCKER-CT, DOCKER-BRIDGE, raw drops"

    public init() {}

    public func lower(_ policy: Policy) -> Result<Ruleset, DiagnosticError> {
        var problems = LayoutDiagnostics(layout: name)
        DockerModernRules.refuseIPv6(policy, docker: "28", &problems)
        let rules = DockerModernRules(isolationChains: true)
        var history = rules.start(host: policy.host)
        rules.replay(policy, history: &history)
        return problems.result(Ruleset(tables: history.ruleset(order: [.mangle, .raw, .filter, .nat])))
    }
}
