import PortcullisIR
import PortcullisNet
import PortcullisPolicy

/// Docker 28.2.2 to 28.5.2 with its iptables firewaller: FORWARD only jumps to
/// `DOCKER-USER` (created empty) and `DOCKER-FORWARD`, which holds the per-bridge accepts behind
/// `DOCKER-CT` (conntrack), `DOCKER-ISOLATION-STAGE-1/2` (no RETURN rules any more) and
/// `DOCKER-BRIDGE` (jumps to `DOCKER`). The filter `DOCKER` chain ends each bridge with a DROP
/// of everything not accepted by a published port; the raw table drops packets routed straight
/// to a container's address from outside its bridge, and remote packets to loopback publishes.
///
/// Rule order follows the daemon's history as moby's generated iptables docs (28.2.2 to 28.5.2)
/// show it. Networks with an IPv6 subnet get the same chains in ip6tables (an `.ip6tables` file),
/// with the policy's IPv6 rules in ip6 `DOCKER-USER`.
public struct Docker28Layout: Layout {
    /// The layout's name, for the readers of its rules (import) as well as `--layout`.
    public static let name = "docker-28"
    public var name: String { Self.name }
    public let summary =
        "Docker 28.2.2-28.5.2 (iptables and ip6tables): DOCKER-FORWARD, DOCKER-CT, DOCKER-BRIDGE, raw drops"

    public init() {}

    public func lower(_ policy: Policy) -> Result<Ruleset, DiagnosticError> {
        let problems = LayoutDiagnostics(layout: name)
        return problems.result(Ruleset(tables: DockerModernRules.tables(policy, isolationChains: true)))
    }
}
