import PortcullisIR
import PortcullisNet
import PortcullisPolicy

/// Docker's classic layout (18.06 to 27.x), as Docker 20.10 writes it: `DOCKER-USER` and
/// `DOCKER-ISOLATION-STAGE-1/2` jumped to from the top of FORWARD, a block of four FORWARD rules
/// per bridge, per-port DNAT / ACCEPT / hairpin MASQUERADE.
///
/// With the host's `ip6tables on` (20.10's experimental `--ip6tables`) the same history is
/// replayed in ip6tables, as 20.10 writes it there (a second file): the chains exist from daemon
/// start; networks with an IPv6 subnet get their rules and the FORWARD and nat jumps; every
/// non-internal network, IPv6 or not, gets its isolation rules; published ports of containers
/// with an IPv6 address on the mapping endpoint get DNAT (no link-local exclusion yet), ACCEPT
/// and hairpin MASQUERADE. 20.10 creates no ip6tables `DOCKER-USER`: the layout adds it, jumped
/// to first from FORWARD, only when the policy has IPv6 rules of its own. Without `ip6tables on`
/// IPv6 subnets are carried but not rendered.
///
/// Later daemons of the era changed the ip6tables part only (`Era`), each a layout of its own,
/// chosen by daemon version: `docker-23` and `docker-25`. Their IPv4 rules are 20.10's.
public struct Docker2010Layout: Layout {
    /// What daemons after 20.10 write differently in ip6tables, from moby's source.
    public enum Era: Int, Sendable, Comparable, CaseIterable {
        /// 18.06 to 22.x: no ip6tables `DOCKER-USER`.
        case docker2010
        /// 23.0 to 24.x: `setupUserChain` runs in ip6tables too (`arrangeUserFilterRule`), so
        /// ip6tables has a `DOCKER-USER` ending in RETURN, jumped to first from FORWARD.
        case docker23
        /// 25.0 to 27.x: also an internal network's IPv6 drops name the other interface
        /// (`! -i BR -o BR`, `-i BR ! -o BR`; moby da9e44a620), checked against Docker 26.1.
        case docker25

        public static func < (a: Era, b: Era) -> Bool { a.rawValue < b.rawValue }

        /// The layout's name.
        public var name: String {
            switch self {
            case .docker2010: "docker-20.10"
            case .docker23: "docker-23"
            case .docker25: "docker-25"
            }
        }

        /// The era of a Docker major version of the classic layout (18 to 27).
        public init(major: Int) {
            self = major >= 25 ? .docker25 : major >= 23 ? .docker23 : .docker2010
        }
    }

    /// The first era's name, for the readers of its rules (import) as well as `--layout`.
    public static let name = Era.docker2010.name
    /// Every era's name.
    public static let names = Era.allCases.map(\.name)
    public let era: Era
    public var name: String { era.name }
    public var summary: String {
        switch era {
        case .docker2010: "Docker 18.06-22.x classic chains, exactly as Docker 20.10 writes them"
        case .docker23: "Docker 23.0-24.x: docker-20.10, and ip6tables DOCKER-USER"
        case .docker25: "Docker 25.0-27.x: docker-23, and IPv6 internal drops naming both interfaces"
        }
    }

    public init(era: Era = .docker2010) { self.era = era }

    public func lower(_ policy: Policy) -> Result<Ruleset, DiagnosticError> {
        var problems = LayoutDiagnostics(layout: name)
        problems.refuseGatewayModes(policy)
        if !policy.host.ip6tables {
            DockerClassicRules.refuseIPv6HostAddresses(
                policy, &problems,
                hint: "Docker 20.10 writes ip6tables rules only with --ip6tables: set 'ip6tables on' in the host block")
        }
        let families: [IPFamily] = policy.host.ip6tables ? [.ipv4, .ipv6] : [.ipv4]
        let ports = DockerDaemon.docker2010.portMappings(policy)
        return problems.result(
            Ruleset(tables: families.flatMap { Replay(era: era, family: $0, ports: ports).tables(policy) }))
    }

    /// The daemon's calls in one family (iptables or ip6tables).
    struct Replay {
        let era: Era
        let family: IPFamily
        /// Docker 20.10's port order, and its daemon-chosen ports in each family.
        let ports: PortMappings

        func subnet(_ network: Network) -> IPPrefix? { family == .ipv4 ? network.subnet4 : network.subnet6 }

        func tables(_ policy: Policy) -> [Table] {
            let host = policy.host
            var history = XtablesHistory(
                family: family == .ipv4 ? .ip : .ip6, forwardPolicy: host.forwardPolicyDrop == false ? .accept : .drop)
            // Daemon start: setupIPChains, in each family the daemon writes.
            history.newChain(.nat, DockerChain.docker)
            history.newChain(.filter, DockerChain.docker)
            history.newChain(.filter, stage1)
            history.newChain(.filter, stage2)
            history.append(.filter, stage1, Rule([], .return, provenance: .daemon))
            history.append(.filter, stage2, Rule([], .return, provenance: .daemon))
            setupUserChain(&history)

            for event in policy.events {
                switch event {
                case .createNetwork(let name):
                    guard let network = policy.network(name) else { continue }
                    createNetwork(network, host: host, history: &history)
                    setupUserChain(&history)
                case .startContainer(let name):
                    guard let container = policy.container(name) else { continue }
                    DockerClassicRules.programPorts(
                        container, policy: policy, ports: ports, family: family,
                        matchBridgeOnDNAT: host.userlandProxy, history: &history)
                }
            }
            let userRules = UserRules(policy: policy, family: family, ports: ports).rules()
            if family == .ipv6 && era < .docker23 && !userRules.isEmpty {
                // Docker 20.10 has no ip6tables DOCKER-USER (23.0 added it, in this shape).
                history.newChain(.filter, user)
                history.append(.filter, user, Rule([], .return, provenance: .daemon))
                history.ensureJumpOnTop(.filter, "FORWARD", to: user)
            }
            history.insertOnTop(.filter, user, userRules)
            return history.ruleset(order: [.mangle, .filter, .nat])
        }

        /// The controller's `setupUserChain`, re-run after every network: DOCKER-USER exists,
        /// ends in RETURN, and FORWARD jumps to it first. IPv4 only before 23.0.
        private func setupUserChain(_ history: inout XtablesHistory) {
            guard family == .ipv4 || era >= .docker23 else { return }
            history.newChain(.filter, user)
            history.append(.filter, user, Rule([], .return, provenance: .daemon))
            history.ensureJumpOnTop(.filter, "FORWARD", to: user)
        }

        private func createNetwork(_ network: Network, host: HostSettings, history: inout XtablesHistory) {
            // setupIPTables runs in ip6tables only for networks with IPv6; the isolation rules
            // (setINC) are written in every family the daemon writes.
            if let subnet = subnet(network) {
                setupIPTables(network, subnet, host: host, history: &history)
            }
            if !network.internal {
                // setINC: isolate this bridge from every other.
                let provenance = network.origin.provenance
                history.insert(
                    .filter, stage1,
                    Rule(
                        [.interface(.source, network.bridge), .interface(.destination, network.bridge, negated: true)],
                        .jump(stage2), provenance: provenance))
                history.insert(
                    .filter, stage2, Rule([.interface(.destination, network.bridge)], .drop, provenance: provenance))
            }
        }

        private func setupIPTables(
            _ network: Network, _ subnet: IPPrefix, host: HostSettings, history: inout XtablesHistory
        ) {
            let hairpin = !host.userlandProxy
            let provenance = network.origin.provenance
            if network.internal {
                // setupInternalNetworkRules: incoming drop, then outgoing drop, both inserted;
                // from 25.0 the IPv6 ones also name the other interface.
                let bothInterfaces = family == .ipv6 && era >= .docker25
                history.insert(
                    .filter, stage1,
                    Rule(
                        [.address(.destination, subnet, negated: true), .interface(.source, network.bridge)]
                            + (bothInterfaces ? [.interface(.destination, network.bridge, negated: true)] : []),
                        .drop, provenance: provenance))
                history.insert(
                    .filter, stage1,
                    Rule(
                        [.address(.source, subnet, negated: true)]
                            + (bothInterfaces ? [.interface(.source, network.bridge, negated: true)] : [])
                            + [.interface(.destination, network.bridge)], .drop, provenance: provenance))
                setIcc(network, &history)
            } else {
                // setupIPTablesInternal.
                if network.masquerade {
                    history.insert(.nat, "POSTROUTING", DockerClassicRules.masquerade(network, subnet))
                }
                if network.masquerade && !hairpin {
                    history.insert(
                        .nat, DockerChain.docker,
                        Rule([.interface(.source, network.bridge)], .return, provenance: provenance))
                }
                if hairpin {
                    history.insert(
                        .nat, "POSTROUTING",
                        Rule(
                            [.interface(.destination, network.bridge), .localAddress(.source)], .masquerade,
                            provenance: provenance))
                }
                setIcc(network, &history)
                history.insert(.filter, "FORWARD", DockerClassicRules.outgoing(network))
                // ProgramChain for nat, then filter.
                history.append(.nat, "PREROUTING", DockerClassicRules.preroutingToDocker)
                history.append(
                    .nat, "OUTPUT", DockerClassicRules.outputToDocker(family: family, excludeLoopback: !hairpin))
                history.insert(.filter, "FORWARD", DockerClassicRules.jumpToDocker(network))
                history.insert(.filter, "FORWARD", DockerClassicRules.established(network))
            }
            history.ensureJumpOnTop(.filter, "FORWARD", to: stage1)
        }

        /// ICC on inserts an ACCEPT; ICC off appends a DROP (so DROPs gather at the end of FORWARD).
        private func setIcc(_ network: Network, _ history: inout XtablesHistory) {
            if network.icc {
                history.insert(.filter, "FORWARD", DockerClassicRules.icc(network, accept: true))
            } else {
                history.append(.filter, "FORWARD", DockerClassicRules.icc(network, accept: false))
            }
        }

        private var stage1: String { DockerChain.isolationStage1 }
        private var stage2: String { DockerChain.isolationStage2 }
        private var user: String { DockerChain.user }
    }
}
