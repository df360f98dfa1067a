import PortcullisIR
import PortcullisNet
import PortcullisPolicy

/// The rules Docker itself cannot write: flows, egress restrictions and source allow-lists on
/// published ports. Docker layouts place them in the chain Docker reserves for users
/// (`DOCKER-USER`), or in a chain of ours jumped to first from FORWARD where Docker has none.
///
/// Order inside the chain: replies to accepted connections first, then source allow-lists,
/// then flows in file order (first match wins), then egress accepts, then egress drops, then
/// (`unknown-containers drop`) the drops of addresses the rules do not know.
struct UserRules {
    let policy: Policy
    let family: IPFamily
    /// Statements added to the accept of each `allow` (Docker 29's nftables layout marks the
    /// packet, since an nftables accept does not stop Docker's own base chains).
    var allowEffects: [Effect] = []
    /// Docker 20.10 allocates daemon-chosen ports per family: IPv6 allow-lists then match the
    /// IPv6 binding's host port. Nil: every family binds `Publish.hostPorts`.
    var ports: PortMappings? = nil
    /// With `unknown-containers drop`, the nftables set of known addresses the layout writes
    /// (`knownAddressSet(named:)`); nil: the iptables form, a `RETURN` per known address.
    var knownSet: String? = nil

    /// Where a container or network sits: its bridge and its address (or subnet).
    struct Site: Hashable {
        /// The container or network name, for comments.
        let owner: String
        let network: String
        let bridge: String
        let prefix: IPPrefix
    }

    /// Every source and destination a flow rule expands to, in rule order; a pair of one address
    /// with itself is left out. A scoped side (`app@edge`) keeps its sites on that network.
    ///
    /// An `allow` opens no path the statement does not name: between two ends that share
    /// networks, only their sites on a shared network are paired (a container on an edge and
    /// an internal network is not reached on the internal one through the edge); between ends
    /// that share none, the flow crosses bridges, but never into or out of an internal network
    /// unless that side is scoped to it. A `deny` pairs every site: it only closes paths.
    func pairs(_ rule: PolicyRule) -> [(source: Site, destination: Site)] {
        rule.sources.flatMap { source in
            rule.destinations.flatMap { destination in pairs(source, destination, of: rule) }
        }
    }

    private func pairs(_ source: Endpoint, _ destination: Endpoint, of rule: PolicyRule) -> [(
        source: Site, destination: Site
    )] {
        let from = sites(source).filter { rule.sourceScope == nil || $0.network == rule.sourceScope }
        let to = sites(destination).filter { rule.destinationScope == nil || $0.network == rule.destinationScope }
        var all = from.flatMap { source in to.filter { $0.prefix != source.prefix }.map { (source, $0) } }
        guard rule.kind == .allow else { return all }
        let shared = Set(from.map(\.network)).intersection(to.map(\.network))
        if !shared.isEmpty {
            all.removeAll { $0.network != $1.network }
        } else {
            let isInternal = { (site: Site) in policy.network(site.network)?.internal == true }
            all.removeAll {
                (rule.sourceScope == nil && isInternal($0)) || (rule.destinationScope == nil && isInternal($1))
            }
        }
        return all
    }

    func sites(_ endpoint: Endpoint) -> [Site] {
        switch endpoint {
        case .network(let name):
            guard let network = policy.network(name),
                let subnet = family == .ipv4 ? network.subnet4 : network.subnet6
            else { return [] }
            return [Site(owner: name, network: name, bridge: network.bridge, prefix: subnet)]
        case .container(let name):
            guard let container = policy.container(name) else { return [] }
            return container.attachments.compactMap { attachment in
                guard let network = policy.network(attachment.network),
                    let address = family == .ipv4 ? attachment.address4 : attachment.address6
                else { return nil }
                return Site(owner: name, network: network.name, bridge: network.bridge, prefix: IPPrefix(host: address))
            }
        }
    }

    /// Port matches for a rule: one variant per port spec, or one unconstrained variant.
    func portVariants(_ ports: [PortSpec]) -> [[Match]] {
        if ports.isEmpty { return [[]] }
        return ports.map { [.transport($0.transport), .port(.destination, $0.ports)] }
    }

    func comment(_ text: String) -> RuleComment? { RuleComment("portcullis: " + text) }

    /// A drop, preceded by a rate-limited log rule when the policy asks for logging.
    func drop(_ matches: [Match], comment: RuleComment?, provenance: Provenance) -> [Rule] {
        var rules: [Rule] = []
        if let log = policy.host.logDrops, let prefix = RuleComment(log.prefix) {
            let rate = Rate(count: log.rateCount, unit: log.rateUnit)
            rules.append(
                Rule(
                    matches + [.limit(rate)], effects: [.log(prefix: prefix)], nil, comment: comment,
                    provenance: provenance))
        }
        rules.append(
            Rule(
                matches, effects: policy.host.countDrops ? [.counter] : [], .drop, comment: comment,
                provenance: provenance))
        return rules
    }

    func rules() -> [Rule] {
        let unknown = knownSet.map { unknownAddressSetRules(set: $0) } ?? unknownAddressRules()
        let body = allowListRules() + flowRules() + directAccessRules() + egressRules() + unknown
        guard !body.isEmpty else { return [] }
        let replies = Rule(
            [.connectionState([.established, .related])], .accept,
            comment: comment("replies to accepted connections"),
            provenance: Provenance(statement: "portcullis: accept replies"))
        return [replies] + body
    }

    /// A publish with a `from` allow-list, at one of its container's addresses of this family.
    struct RestrictedPublish {
        let container: Container
        /// The publish's position in `container.publishes`.
        let index: Int
        let publish: Publish
        let network: Network
        let address: IPAddress
    }

    /// Every allow-listed publish at every address of its container on a non-internal network.
    func restrictedPublishes() -> [RestrictedPublish] {
        policy.containers.flatMap { container in
            container.publishes.enumerated().filter { !$0.element.allowedSources.isEmpty }.flatMap { index, publish in
                container.attachments.compactMap { attachment -> RestrictedPublish? in
                    guard let network = policy.network(attachment.network), !network.internal,
                        let address = family == .ipv4 ? attachment.address4 : attachment.address6
                    else { return nil }
                    return RestrictedPublish(
                        container: container, index: index, publish: publish, network: network, address: address)
                }
            }
        }
    }

    /// Published ports with `from`: after DNAT the packet carries the container's address and
    /// port, so the rule matches the original destination through conntrack; otherwise an
    /// allow-list on 8080 -> 80 would also govern every other way of reaching port 80. Only
    /// connections that came in through DNAT are concerned: a neighbour talking to the container
    /// port directly is not the publish's business.
    func allowListRules() -> [Rule] {
        restrictedPublishes().flatMap { target -> [Rule] in
            let publish = target.publish
            guard publish.hostAddress.map({ $0.family == family }) ?? true else { return [] }
            let text = comment(
                "publish \(publish.hostPorts)/\(publish.transport.rawValue) of \(target.container.name) from \(publish.allowedSourcesText)"
            )
            var matches: [Match] = [
                .address(.destination, IPPrefix(host: target.address)), .interface(.destination, target.network.bridge),
                .transport(publish.transport), .destinationTranslated(),
            ]
            if let hostAddress = publish.hostAddress ?? target.network.hostBinding, hostAddress.family == family,
                !hostAddress.isUnspecified
            {
                matches.append(.originalDestination(IPPrefix(host: hostAddress)))
            }
            let hostPorts =
                ports?.hostPorts(of: target.container, publish: target.index, family: family) ?? publish.hostPorts
            matches += [.originalDestinationPort(hostPorts), .port(.destination, publish.containerPorts)]
            let allowed = publish.allowedSources.filter { $0.family == family }.map { source in
                Rule(
                    [.address(.source, source)] + matches, .return, comment: text, provenance: publish.origin.provenance
                )
            }
            return allowed + drop(matches, comment: text, provenance: publish.origin.provenance)
        }
    }

    /// A container port behind an allow-listed publish is also reachable by routing straight to
    /// the container's address (Docker 20.10 accepts that for every published port). Traffic
    /// from outside the container's bridge that did not come through DNAT is dropped, after the
    /// flows, so that an explicit `allow` from another network still works.
    func directAccessRules() -> [Rule] {
        var written: Set<[Match]> = []
        return restrictedPublishes().flatMap { target -> [Rule] in
            let publish = target.publish
            let matches: [Match] = [
                .address(.destination, IPPrefix(host: target.address)),
                .interface(.source, target.network.bridge, negated: true),
                .interface(.destination, target.network.bridge),
                .transport(publish.transport), .destinationTranslated(negated: true),
                .port(.destination, publish.containerPorts),
            ]
            guard written.insert(matches).inserted else { return [] }
            let text = comment(
                "publish \(publish.hostPorts)/\(publish.transport.rawValue) of \(target.container.name): no direct access"
            )
            return drop(matches, comment: text, provenance: publish.origin.provenance)
        }
    }

    /// Layouts whose Docker drops packets routed straight to a container's address before any
    /// user chain runs (Docker 28's raw PREROUTING drops, which come before connection
    /// tracking) need an exception for each allowed flow that crosses bridges, in both
    /// directions: the flow itself, and its replies (matched by source port, as state is not
    /// known yet; the filter rules still decide on state). Output interfaces are not known
    /// before routing and are left out.
    func crossBridgeAllowances() -> [Rule] {
        policy.rules.filter { $0.kind == .allow }.flatMap { rule in
            pairs(rule).filter { $0.source.bridge != $0.destination.bridge }.flatMap { source, destination in
                let text = comment(rule.text)
                let provenance = rule.origin.provenance
                let ports = rule.ports.isEmpty ? [nil] : rule.ports.map(Optional.some)
                return ports.flatMap { spec -> [Rule] in
                    let forward: [Match] = spec.map { [.transport($0.transport), .port(.destination, $0.ports)] } ?? []
                    let reply: [Match] = spec.map { [.transport($0.transport), .port(.source, $0.ports)] } ?? []
                    return [
                        Rule(
                            [
                                .address(.source, source.prefix), .address(.destination, destination.prefix),
                                .interface(.source, source.bridge),
                            ] + forward, .accept, comment: text, provenance: provenance),
                        Rule(
                            [
                                .address(.source, destination.prefix), .address(.destination, source.prefix),
                                .interface(.source, destination.bridge),
                            ] + reply, .accept, comment: text, provenance: provenance),
                    ]
                }
            }
        }
    }

    func flowRules() -> [Rule] {
        var rules: [Rule] = []
        for rule in policy.rules where rule.kind != .egress {
            let text = comment(rule.text)
            for (source, destination) in pairs(rule) {
                for ports in portVariants(rule.ports) {
                    let matches: [Match] =
                        [
                            .address(.source, source.prefix), .address(.destination, destination.prefix),
                            .interface(.source, source.bridge), .interface(.destination, destination.bridge),
                        ] + ports
                    if rule.kind == .allow {
                        rules.append(
                            Rule(
                                matches, effects: allowEffects, .accept, comment: text,
                                provenance: rule.origin.provenance))
                    } else {
                        rules += drop(matches, comment: text, provenance: rule.origin.provenance)
                    }
                }
            }
        }
        return rules
    }

    /// A source with egress rules may leave its bridge only as they say; sources without any
    /// keep Docker's default (outbound allowed where the network is not internal). Egress is
    /// about leaving the host: attachments to internal networks have none, and traffic to other
    /// bridges is left to Docker's isolation (and to flows) rather than accepted here.
    func egressRules() -> [Rule] {
        var accepts: [Rule] = []
        var restricted: [(Site, PolicyRule)] = []
        var restrictedSites: Set<Site> = []  // thousands of sources: no linear search
        let externals = policy.host.externalInterfaces
        for rule in policy.rules where rule.kind == .egress {
            let text = comment(rule.text)
            let destinations: [IPPrefix?]
            switch rule.egressDestination {
            case .anywhere: destinations = [nil]
            case .prefixes(let prefixes): destinations = prefixes.filter { $0.family == family }
            }
            for source in rule.sources.flatMap(sites) where policy.network(source.network)?.internal == false {
                if restrictedSites.insert(source).inserted { restricted.append((source, rule)) }
                for destination in destinations {
                    for ports in portVariants(rule.ports) {
                        for external in externals.isEmpty ? [nil] : externals.map(Optional.some) {
                            var matches: [Match] = [.address(.source, source.prefix)]
                            if let destination { matches.append(.address(.destination, destination)) }
                            matches.append(.interface(.source, source.bridge))
                            matches.append(
                                external.map { .interface(.destination, $0) }
                                    ?? .interface(.destination, source.bridge, negated: true))
                            accepts.append(
                                Rule(matches + ports, .accept, comment: text, provenance: rule.origin.provenance))
                        }
                    }
                }
            }
        }
        // Without a named uplink, "leaving the bridge" would include other bridges: hand that
        // traffic back to Docker before the accepts can see it.
        let otherBridges = externals.isEmpty ? policy.networks.map(\.bridge) : []
        let returns = restricted.flatMap { site, rule in
            otherBridges.filter { $0 != site.bridge }.map { bridge in
                Rule(
                    [
                        .address(.source, site.prefix), .interface(.source, site.bridge),
                        .interface(.destination, bridge),
                    ],
                    .return, comment: comment("egress of \(site.owner) is not about \(bridge)"),
                    provenance: rule.origin.provenance)
            }
        }
        let drops = restricted.flatMap { site, rule in
            drop(
                [
                    .address(.source, site.prefix), .interface(.source, site.bridge),
                    .interface(.destination, site.bridge, negated: true),
                ], comment: comment("other egress of \(site.owner)"), provenance: rule.origin.provenance)
        }
        return returns + accepts + drops
    }
}
