import PortcullisIR
import PortcullisNet
import PortcullisPolicy

/// Docker 1.5/1.6: one bridge, its rules straight in FORWARD under a jump to `DOCKER`, FORWARD
/// policy ACCEPT, no user chain. Policy rules Docker cannot express go in `PORTCULLIS-FORWARD`,
/// jumped to first from FORWARD (written only when the policy has such rules).
public struct Docker15Layout: Layout {
    /// The layout's name, for the readers of its rules (import) as well as `--layout`.
    public static let name = "docker-1.5"
    public var name: String { Self.name }
    public let summary = "Docker 1.5/1.6: a single bridge, per-bridge rules straight in FORWARD"

    public init() {}

    /// Where the policy's own rules go (Docker 1.5 has no user chain).
    public static let userChain = "PORTCULLIS-FORWARD"

    public func lower(_ policy: Policy) -> Result<Ruleset, DiagnosticError> {
        var problems = LayoutDiagnostics(layout: name)
        problems.refuseGatewayModes(policy)
        checkExpressible(policy, &problems)
        let host = policy.host
        var history = XtablesHistory(family: .ip, forwardPolicy: host.forwardPolicyDrop == true ? .drop : .accept)
        if let network = policy.networks.first, let subnet = network.subnet4 {
            // InitDriver: setupIPTables inserts MASQUERADE, ICC, outgoing, conntrack...
            if network.masquerade {
                history.insert(.nat, "POSTROUTING", DockerClassicRules.masquerade(network, subnet))
            }
            history.insert(.filter, "FORWARD", DockerClassicRules.icc(network, accept: network.icc))
            history.insert(.filter, "FORWARD", DockerClassicRules.outgoing(network))
            history.insert(.filter, "FORWARD", DockerClassicRules.established(network))
            // ...then NewChain(DOCKER) for nat (jumps appended) and filter (jump inserted).
            history.newChain(.nat, DockerChain.docker)
            history.append(.nat, "PREROUTING", DockerClassicRules.preroutingToDocker)
            history.append(.nat, "OUTPUT", DockerClassicRules.outputToDocker(family: .ipv4, excludeLoopback: true))
            history.newChain(.filter, DockerChain.docker)
            history.insert(.filter, "FORWARD", DockerClassicRules.jumpToDocker(network))
        }
        let ports = DockerDaemon.docker2010.portMappings(policy)
        for case .startContainer(let name) in policy.events {
            guard let container = policy.container(name) else { continue }
            DockerClassicRules.programPorts(
                container, policy: policy, ports: ports, matchBridgeOnDNAT: true, history: &history)
        }
        let userRules = UserRules(policy: policy, family: .ipv4, ports: ports).rules()
        if !userRules.isEmpty {
            for rule in userRules { history.append(.filter, Self.userChain, rule) }
            history.ensureJumpOnTop(.filter, "FORWARD", to: Self.userChain)
        }
        return problems.result(Ruleset(tables: history.ruleset(order: [.filter, .nat])))
    }

    private func checkExpressible(_ policy: Policy, _ problems: inout LayoutDiagnostics) {
        for network in policy.networks.dropFirst() {
            problems.unsupported(
                "a second network ('\(network.name)')", at: network.origin,
                hint: "Docker 1.5 has a single bridge; use --layout docker-20.10 for user-defined networks")
        }
        for network in policy.networks where network.internal {
            problems.unsupported("an internal network", at: network.origin)
        }
        if !policy.host.userlandProxy, let location = policy.host.locations["userland-proxy"] {
            problems.unsupported(
                "userland-proxy off", at: Origin("userland-proxy off", at: location),
                hint: "the switch arrived in Docker 1.7")
        }
        DockerClassicRules.refuseIPv6HostAddresses(
            policy, &problems, hint: "Docker 1.5 writes no ip6tables rules; publish on an IPv4 host address")
        if policy.host.ip6tables, let location = policy.host.locations["ip6tables"] {
            problems.unsupported(
                "ip6tables on", at: Origin("ip6tables on", at: location),
                hint: "Docker 1.5 writes no ip6tables rules; Docker 20.10's --ip6tables is layout docker-20.10")
        }
        for container in policy.containers {
            for publish in container.publishes where publish.transport == .sctp {
                problems.unsupported(
                    "SCTP publishes", at: publish.origin, hint: "SCTP publishing arrived in Docker 18.03")
            }
        }
    }
}
