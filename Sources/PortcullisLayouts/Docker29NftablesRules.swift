import PortcullisIR
import PortcullisNet
import PortcullisPolicy

/// Docker 29's nftables firewaller (`"firewall-backend": "nftables"`), IPv4: one table,
/// `ip docker-bridges`, whose base chains only dispatch through verdict maps keyed by interface
/// name to four chains per bridge. Rules stand in the order moby's nftabler writes them: each
/// chain's rules by rule group (conntrack, fwmark, ICC, ports, final drop), appended within a
/// group as networks are created and containers started (docker-rules.md section 7, moby
/// `daemon/libnetwork/drivers/bridge/internal/nftabler` at docker-v29.7.2).
///
/// Docker's nftables backend has no DOCKER-USER. The policy's own rules go into a table of
/// ours, `ip portcullis-user`, whose forward chain runs just before Docker's (priority filter - 1).
/// Drops there are final; an accept is not (Docker's base chain still runs), so an `allow` of a
/// flow Docker would drop also sets a firewall mark, which the daemon (started with
/// `"bridge-accept-fwmark"`) accepts at the top of the bridge's `filter-forward-in` chain. An
/// `allow` across bridges also needs to pass Docker's raw direct-access drops, which no other
/// table can undo: such a policy models a daemon with `"allow-direct-routing": true` (no raw
/// drops of its own) and writes the same drops into our raw chain, below exceptions for the
/// allowed flows.
public struct Docker29NftablesRules {
    public static let table = "docker-bridges"
    public static let userTable = "portcullis-user"
    /// The set of addresses `unknown-containers drop` lets through, in `portcullis-user`.
    public static let knownSet = "known-addresses"
    /// The mark Portcullis sets on allowed flows Docker would drop: the daemon must run with
    /// `"bridge-accept-fwmark": "0x10000000/0x10000000"`. One bit, so other marks survive.
    static let acceptMark: UInt32 = 0x1000_0000

    /// Chain names, the same in Docker's table and in ours (`forward`, `rawPrerouting`).
    public static let forward = "filter-FORWARD"
    public static let natOutput = "nat-OUTPUT"
    public static let natPostrouting = "nat-POSTROUTING"
    public static let natPrerouting = "nat-PREROUTING"
    public static let natChain = "nat-prerouting-and-output"
    public static let rawPrerouting = "raw-PREROUTING"
    public static let forwardInJumps = "filter-forward-in-jumps"
    public static let forwardOutJumps = "filter-forward-out-jumps"
    public static let postroutingInJumps = "nat-postrouting-in-jumps"
    public static let postroutingOutJumps = "nat-postrouting-out-jumps"

    /// A bridge's chains: the base name and the bridge, `filter-forward-in__docker0`.
    public static func forwardIn(_ bridge: String) -> String { "filter-forward-in__" + bridge }
    public static func forwardOut(_ bridge: String) -> String { "filter-forward-out__" + bridge }
    public static func postroutingIn(_ bridge: String) -> String { "nat-postrouting-in__" + bridge }
    public static func postroutingOut(_ bridge: String) -> String { "nat-postrouting-out__" + bridge }

    /// The comments Docker writes on a bridge's rules, which tell them apart for import.
    public static let iccComment = "ICC"
    public static let internalIngressComment = "INTERNAL NETWORK INGRESS"
    public static let unprotectedComment = "UNPROTECTED"

    let policy: Policy
    var family: IPFamily = .ipv4

    var tableFamily: TableFamily { family == .ipv4 ? .ip : .ip6 }
    /// A network's gateway mode in this family (IPv6 is always `nat`).
    func gatewayMode(_ network: Network) -> GatewayMode { family == .ipv4 ? network.gatewayMode4 : .nat }
    func subnet(_ network: Network) -> IPPrefix? { family == .ipv4 ? network.subnet4 : network.subnet6 }
    func address(_ attachment: Attachment) -> IPAddress? {
        family == .ipv4 ? attachment.address4 : attachment.address6
    }

    /// Docker's tables (`ip`, and `ip6` when a network has an IPv6 subnet; Docker creates an
    /// empty `ip6 docker-bridges` at start either way), then ours.
    static func lower(_ policy: Policy, _ problems: inout LayoutDiagnostics) -> [Table] {
        let families: [IPFamily] = policy.networks.contains { $0.subnet6 != nil } ? [.ipv4, .ipv6] : [.ipv4]
        let layouts = families.map { Docker29NftablesRules(policy: policy, family: $0) }
        layouts[0].refuse(&problems)
        var needs = Needs()
        var refused: Set<[String]> = []
        for layout in layouts { layout.needs(&needs, refused: &refused, &problems) }
        return layouts.map {
            var docker = $0.dockerTable(needs)
            docker.keepsMatchOrder = true
            return docker
        } + layouts.flatMap { $0.userTable(needs) }
    }

    /// A rule with a counter, as every rule Docker's nftabler writes outside the base chains.
    static func counted(_ matches: [Match], _ action: Action, comment: String? = nil, provenance: Provenance) -> Rule {
        Rule(matches, effects: [.counter], action, comment: comment.flatMap(RuleComment.init), provenance: provenance)
    }

    /// One bridge's chains, rule group by rule group (nftabler's `RuleGroup`s).
    struct Bridge {
        let network: Network
        var forwardInInitial: [Rule] = []
        var forwardInMark: [Rule] = []
        var forwardInICC: [Rule] = []
        var forwardInPorts: [Rule] = []
        var forwardInFinal: [Rule] = []
        var forwardOut: [Rule] = []
        var postroutingIn: [Rule] = []
        var postroutingOut: [Rule] = []

        var chains: [Chain] {
            let bridge = network.bridge
            return [
                Chain(
                    name: Docker29NftablesRules.forwardIn(bridge),
                    rules: forwardInInitial + forwardInMark + forwardInICC + forwardInPorts + forwardInFinal),
                Chain(name: Docker29NftablesRules.forwardOut(bridge), rules: forwardOut),
                Chain(name: Docker29NftablesRules.postroutingIn(bridge), rules: postroutingIn),
                Chain(name: Docker29NftablesRules.postroutingOut(bridge), rules: postroutingOut),
            ]
        }
    }

    /// What the policy asks of the daemon's configuration, and what it cannot have.
    struct Needs {
        /// `--bridge-accept-fwmark`: some allowed flow is one Docker drops in filter-forward.
        var acceptMark = false
        /// `--allow-direct-routing`: some allowed flow crosses bridges (Docker's raw drops).
        var directRouting = false
    }

    /// What this family's allowed flows need; a refusal is reported once per rule and network.
    func needs(_ needs: inout Needs, refused: inout Set<[String]>, _ problems: inout LayoutDiagnostics) {
        let user = UserRules(policy: policy, family: family)
        for rule in policy.rules where rule.kind == .allow {
            for (source, destination) in user.pairs(rule) {
                guard let network = policy.network(destination.network) else { continue }
                let crosses = source.bridge != destination.bridge
                if network.internal && (crosses || !network.icc) {
                    // Internal networks' chains have no fwmark rule: nothing can accept past
                    // their INTERNAL NETWORK INGRESS or ICC drops.
                    if refused.insert([rule.text, "\(rule.origin.location.line)", network.name]).inserted {
                        problems.unsupported(
                            "an allow into internal network '\(network.name)' with Docker's nftables firewaller",
                            at: rule.origin,
                            hint:
                                "Docker 29's nftables rules for internal networks drop \(crosses ? "traffic from other bridges" : "traffic between containers") before any mark is looked at; use --backend iptables"
                        )
                    }
                    continue
                }
                if crosses {
                    needs.directRouting = true
                    needs.acceptMark = true
                } else if !network.icc {
                    needs.acceptMark = true
                }
            }
        }
    }

    func refuse(_ problems: inout LayoutDiagnostics) {
        if policy.host.forwardPolicyDrop == true, let location = policy.host.locations["forward-policy"] {
            problems.unsupported(
                "forward-policy drop with Docker's nftables firewaller",
                at: Origin("forward-policy drop", at: location),
                hint: "Docker 29 with nftables never sets the forward policy (moby#50646); use --backend iptables")
        }
        for network in policy.networks {
            let plain = network.bridge.allSatisfy {
                $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-")
            }
            if !plain {
                problems.unsupported(
                    "bridge '\(network.bridge)' with Docker's nftables firewaller", at: network.origin,
                    hint: "its chain names (filter-forward-in__\(network.bridge)...) cannot be written in nft syntax")
            }
        }
    }

    // MARK: - Docker's table

    func dockerTable(_ needs: Needs) -> Table {
        var parts = DockerTableParts()
        let ports = DockerDaemon.docker27.portMappings(policy)
        for event in policy.events {
            switch event {
            case .createNetwork(let name):
                guard let network = policy.network(name), subnet(network) != nil else { continue }
                parts.bridges.append(createNetwork(network, needs: needs))
            case .startContainer(let name):
                guard let container = policy.container(name) else { continue }
                if !needs.directRouting { parts.raw += directAccessDrops(container) }
                startContainer(container, ports: ports, into: &parts)
            }
        }
        func jumps(_ name: String, _ chain: (String) -> String) -> NamedSet {
            NamedSet(
                name: name, keyTypes: [.interfaceName], mapValue: .verdict, interval: false,
                elements: parts.bridges.map { bridge in
                    SetElement(
                        key: [.interface(bridge.network.bridge)], value: .verdict(.jump(chain(bridge.network.bridge))),
                        provenance: bridge.network.origin.provenance)
                })
        }
        return Table(
            family: tableFamily, name: Self.table, chains: baseChains(parts) + parts.bridges.flatMap(\.chains),
            sets: [
                jumps(Self.forwardInJumps, Self.forwardIn), jumps(Self.forwardOutJumps, Self.forwardOut),
                jumps(Self.postroutingInJumps, Self.postroutingIn),
                jumps(Self.postroutingOutJumps, Self.postroutingOut),
            ])
    }

    /// What the networks and containers add to Docker's table, in the order they come.
    struct DockerTableParts {
        var bridges: [Bridge] = []
        var dnat: [Rule] = []
        var raw: [Rule] = []
    }

    /// The port bindings of a container's gateway endpoint, in its bridge's chains.
    private func startContainer(_ container: Container, ports: PortMappings, into parts: inout DockerTableParts) {
        guard let (attachment, network) = DockerClassicRules.portMappingEndpoint(container, policy: policy),
            let address = address(attachment),
            let index = parts.bridges.firstIndex(where: { $0.network.name == network.name })
        else { return }
        let hairpin = !policy.host.userlandProxy
        let mode = gatewayMode(network)
        for binding in ports.bindings(of: container) {
            guard let host = DockerModernRules.hostBinding(binding.publish, network: network, family: family)
            else { continue }
            let rules = portRules(
                binding, containerAddress: address, network: network, hostAddress: host.address, hairpin: hairpin)
            // setPerPortForwarding (not in nat-unprotected mode, whose final rule accepts
            // everything), then, unless routed mode maps no host port, setPerPortDNAT,
            // setPerPortHairpinMasq, filterPortMappedOnLoopback; a rule already there is
            // not added twice.
            if mode != .natUnprotected { appendOnce(&parts.bridges[index].forwardInPorts, rules.accept) }
            guard mode != .routed else { continue }
            parts.dnat.append(rules.dnat)
            if hairpin { appendOnce(&parts.bridges[index].postroutingIn, rules.hairpinMasquerade) }
            if let loopback = rules.loopbackDrop { parts.raw.append(loopback) }
        }
    }

    /// The base chains and the NAT chain, which jump to the bridges' chains through the maps.
    private func baseChains(_ parts: DockerTableParts) -> [Chain] {
        let hairpin = !policy.host.userlandProxy
        let daemon = Provenance.daemon
        let loopback = IPPrefix.loopback(family)
        let toNAT = Self.counted([.localAddress(.destination)], .jump(Self.natChain), provenance: daemon)
        return [
            Chain(
                name: Self.forward, base: BaseChain(type: .filter, hook: .forward, priority: 0),
                rules: [
                    Rule([], .verdictMap(keys: [.outputInterface], map: Self.forwardInJumps), provenance: daemon),
                    Rule([], .verdictMap(keys: [.inputInterface], map: Self.forwardOutJumps), provenance: daemon),
                ]),
            Chain(
                name: Self.natOutput, base: BaseChain(type: .nat, hook: .output, priority: -100),
                rules: [
                    Self.counted(
                        (hairpin ? [] : [.address(.destination, loopback, negated: true)]) + [
                            .localAddress(.destination)
                        ],
                        .jump(Self.natChain), provenance: daemon)
                ]),
            Chain(
                name: Self.natPostrouting, base: BaseChain(type: .nat, hook: .postrouting, priority: 100),
                rules: [
                    Rule([], .verdictMap(keys: [.inputInterface], map: Self.postroutingOutJumps), provenance: daemon),
                    Rule([], .verdictMap(keys: [.outputInterface], map: Self.postroutingInJumps), provenance: daemon),
                ]),
            Chain(
                name: Self.natPrerouting, base: BaseChain(type: .nat, hook: .prerouting, priority: -100), rules: [toNAT]
            ),
            Chain(name: Self.natChain, rules: parts.dnat),
            Chain(
                name: Self.rawPrerouting, base: BaseChain(type: .filter, hook: .prerouting, priority: -300),
                rules: parts.raw),
        ]
    }

    /// nftabler's `NewNetwork`: the four chains and their map elements, and the rules that do
    /// not depend on containers.
    func createNetwork(_ network: Network, needs: Needs) -> Bridge {
        let provenance = network.origin.provenance
        let bridgeName = network.bridge
        var bridge = Bridge(network: network)
        let established = Self.counted([.connectionState([.established, .related])], .accept, provenance: provenance)
        bridge.forwardInInitial = [established]
        bridge.forwardOut = [established]
        let icc: Action = network.icc ? .accept : .drop
        if network.internal {
            bridge.forwardInInitial.append(
                Self.counted(
                    [.interface(.source, bridgeName, negated: true)], .drop, comment: Self.internalIngressComment,
                    provenance: provenance))
            bridge.forwardOut.append(
                Self.counted(
                    [.interface(.destination, bridgeName, negated: true)], .drop, comment: "INTERNAL NETWORK EGRESS",
                    provenance: provenance))
            bridge.forwardInICC = [Self.counted([], icc, comment: Self.iccComment, provenance: provenance)]
            return bridge
        }
        if needs.acceptMark {
            bridge.forwardInMark = [
                Self.counted(
                    [.mark(Self.acceptMark, mask: Self.acceptMark)], .accept, comment: "ALLOW FW MARK",
                    provenance: Provenance(statement: "docker daemon option bridge-accept-fwmark"))
            ]
        }
        bridge.forwardInICC = [
            Self.counted([.interface(.source, bridgeName)], icc, comment: Self.iccComment, provenance: provenance)
        ]
        bridge.forwardOut.append(Self.counted([], .accept, comment: "OUTGOING", provenance: provenance))
        let mode = gatewayMode(network)
        bridge.forwardInFinal = [
            mode == .natUnprotected
                ? Self.counted([], .accept, comment: Self.unprotectedComment, provenance: provenance)
                : Self.counted([], .drop, comment: "UNPUBLISHED PORT DROP", provenance: provenance)
        ]
        if mode == .routed {
            bridge.forwardInInitial.append(
                Self.counted([.icmp], .accept, comment: "ICMP", provenance: provenance))
        }
        if network.masquerade && mode != .routed, let subnet = subnet(network) {
            bridge.postroutingOut = [
                Self.counted(
                    [.interface(.destination, bridgeName, negated: true), .address(.source, subnet)], .masquerade,
                    comment: "MASQUERADE", provenance: provenance)
            ]
        }
        if !policy.host.userlandProxy {
            bridge.postroutingIn = [
                Self.counted(
                    [.localAddress(.source)], .masquerade, comment: "MASQUERADE FROM HOST", provenance: provenance)
            ]
        }
        return bridge
    }

    /// nftabler's `filterDirectAccess` for each of the container's endpoints on a non-internal
    /// network in nat mode: packets routed to its address from anywhere but its bridge are
    /// dropped.
    func directAccessDrops(_ container: Container, comment: String = "DROP DIRECT ACCESS") -> [Rule] {
        container.attachments.compactMap { attachment in
            guard let network = policy.network(attachment.network), !network.internal, subnet(network) != nil,
                gatewayMode(network) == .nat, let address = address(attachment)
            else { return nil }
            return Self.counted(
                [.address(.destination, IPPrefix(host: address)), .interface(.source, network.bridge, negated: true)],
                .drop, comment: comment, provenance: container.origin.provenance)
        }
    }

    struct PortRules {
        var accept: Rule
        var dnat: Rule
        var hairpinMasquerade: Rule
        var loopbackDrop: Rule?
    }

    func portRules(
        _ binding: PortBinding, containerAddress: IPAddress, network: Network, hostAddress: IPAddress?,
        hairpin: Bool
    ) -> PortRules {
        let provenance = binding.publish.origin.provenance
        let transport = binding.publish.transport
        let container = IPPrefix(host: containerAddress)
        let containerPort: [Match] = [.transport(transport), .port(.destination, PortRange(binding.containerPort))]
        let hostPort: [Match] = [.transport(transport), .port(.destination, PortRange(binding.hostPort))]
        var dnatMatches: [Match] = hairpin ? [] : [.interface(.source, network.bridge, negated: true)]
        if family == .ipv6 {
            // Link-local sources are never translated (`ip6 saddr != fe80::/10`).
            dnatMatches.append(
                .address(.source, IPPrefix(address: .init(ipv6: 0xfe80 << 48, 0), length: 10), negated: true))
        }
        if let hostAddress { dnatMatches.append(.address(.destination, IPPrefix(host: hostAddress))) }
        var loopbackDrop: Rule?
        // IPv6 loopback is not routable: no drop for it.
        if let hostAddress, IPPrefix.loopback(.ipv4).contains(hostAddress) {
            loopbackDrop = Self.counted(
                [.interface(.source, "lo", negated: true), .address(.destination, IPPrefix(host: hostAddress))]
                    + hostPort, .drop, comment: "DROP REMOTE LOOPBACK", provenance: provenance)
        }
        return PortRules(
            accept: Self.counted([.address(.destination, container)] + containerPort, .accept, provenance: provenance),
            dnat: Self.counted(
                dnatMatches + hostPort, .dnat(containerAddress, PortRange(binding.containerPort)), comment: "DNAT",
                provenance: provenance),
            hairpinMasquerade: Self.counted(
                [.address(.source, container), .address(.destination, container)] + containerPort, .masquerade,
                comment: "MASQ TO OWN PORT", provenance: provenance),
            loopbackDrop: loopbackDrop)
    }

    /// Docker ignores "rule exists" when the same per-port rule comes from two bindings.
    func appendOnce(_ rules: inout [Rule], _ rule: Rule) {
        let exists = rules.contains {
            $0.matches == rule.matches && $0.effects == rule.effects && $0.action == rule.action
                && $0.comment == rule.comment
        }
        if !exists { rules.append(rule) }
    }

    // MARK: - The policy's own table

    /// `ip portcullis-user`: the policy's rules in a forward chain that runs before Docker's and,
    /// when an allowed flow crosses bridges, the direct-access drops Docker leaves out with
    /// `allow-direct-routing`, below exceptions for those flows. Absent when there is nothing to
    /// write.
    func userTable(_ needs: Needs) -> [Table] {
        let user = UserRules(
            policy: policy, family: family, allowEffects: needs.acceptMark ? [.addMarkBits(Self.acceptMark)] : [],
            knownSet: Self.knownSet)
        var chains: [Chain] = []
        if needs.directRouting {
            let drops = policy.containers.flatMap {
                directAccessDrops($0, comment: "portcullis: no direct access to \($0.name) (allow-direct-routing)")
            }
            chains.append(
                Chain(
                    name: Self.rawPrerouting, base: BaseChain(type: .filter, hook: .prerouting, priority: -300),
                    rules: user.crossBridgeAllowances() + drops))
        }
        let rules = user.rules()
        if !rules.isEmpty {
            chains.append(
                Chain(name: Self.forward, base: BaseChain(type: .filter, hook: .forward, priority: -1), rules: rules))
        }
        guard !chains.isEmpty else { return [] }
        var table = Table(family: tableFamily, name: Self.userTable, chains: chains)
        if let known = user.knownAddressSet(named: Self.knownSet) { table.sets.append(known) }
        return [table]
    }
}
