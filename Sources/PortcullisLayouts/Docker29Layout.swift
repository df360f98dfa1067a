import PortcullisIR
import PortcullisNet
import PortcullisPolicy

/// Docker 29.x with its default iptables firewaller: Docker 28.2.2's chains without the
/// isolation chains. `DOCKER-FORWARD` jumps to `DOCKER-CT`, `DOCKER-INTERNAL` (the drops that keep
/// internal networks on their bridge) and `DOCKER-BRIDGE`; traffic between non-internal networks
/// is stopped only by the raw-PREROUTING direct-access drops and each bridge's DROP at the end of
/// filter `DOCKER`, so a published host port is reachable from other networks too. The nat
/// `DOCKER -i BR -j RETURN` rules are gone.
///
/// Rule order follows the daemon's history as moby's generated iptables docs (docker-v29.0.0 to
/// docker-v29.7.2) show it. Networks with an IPv6 subnet get the same chains in ip6tables (an
/// `.ip6tables` file), with the policy's IPv6 rules in ip6 `DOCKER-USER`.
public struct Docker29Layout: Layout {
    /// The layout's name, for the readers of its rules (import) as well as `--layout`.
    public static let name = "docker-29"
    public var name: String { Self.name }
    public let summary =
        "Docker 29.x (iptables and ip6tables, or nftables): DOCKER-FORWARD, DOCKER-CT, DOCKER-INTERNAL, raw drops"

    public init() {}

    public func lower(_ policy: Policy) -> Result<Ruleset, DiagnosticError> {
        let problems = LayoutDiagnostics(layout: name)
        return problems.result(Ruleset(tables: DockerModernRules.tables(policy, isolationChains: false)))
    }

    /// With `.nftables`, Docker 29's own nftables firewaller (`ip docker-bridges`, see
    /// `Docker29NftablesRules`); with `.iptables`, the iptables one above.
    public func lower(_ policy: Policy, for firewall: Firewall) -> Result<Ruleset, DiagnosticError> {
        guard firewall == .nftables else { return lower(policy) }
        var problems = LayoutDiagnostics(layout: name)
        let tables = Docker29NftablesRules.lower(policy, &problems)
        return problems.result(Ruleset(tables: tables))
    }
}
