import PortcullisIR
import PortcullisLayouts
import PortcullisNet

/// Docker 29's own nftables tables (`ip docker-bridges`, `ip6 docker-bridges`, and Portcullis'
/// `portcullis-user` beside them) restated as the iptables chains Docker 29 writes for the same
/// host, so that one importer reads both firewallers: per bridge, its ICC verdict, internal
/// drops, gateway mode and MASQUERADE; the DNAT rules, raw drops, and the user rules.
struct DockerBridgesImport {
    typealias Names = Docker29NftablesRules

    var filter: Table
    var nat: Table
    var raw: Table

    static func iptablesForm(of ruleset: Ruleset) -> Ruleset? {
        guard ruleset.table(.ip, Names.table) != nil else { return nil }
        var result = Ruleset()
        for family in [TableFamily.ip, .ip6] {
            guard let docker = ruleset.table(family, Names.table) else { continue }
            var tables = DockerBridgesImport(family: family)
            // Bridges in the order the dispatch map lists them (Docker adds each at creation).
            let bridges: [String] =
                docker.sets.first { $0.name == Names.forwardInJumps }?.elements.compactMap {
                    if case .interface(let name)? = $0.key.first { return name }
                    return nil
                } ?? []
            for bridge in bridges { tables.add(bridge, of: docker) }
            tables.addPublishes(of: docker, family: family)
            tables.addPolicyRules(of: ruleset.table(family, Names.userTable))
            result.tables += [tables.raw, tables.filter, tables.nat]
        }
        return result
    }

    /// The chains Docker 29 writes with iptables, empty.
    init(family: TableFamily) {
        filter = Table(family: family, name: "filter")
        nat = Table(family: family, name: "nat")
        raw = Table(family: family, name: "raw")
        // Docker never sets the forward policy with nftables; the layout's default is drop.
        filter[chain: "FORWARD"] = Chain(
            name: "FORWARD", base: BaseChain(type: .filter, hook: .forward, priority: 0, policy: .drop))
        for name in [DockerChain.docker, DockerChain.forward, DockerChain.internal, DockerChain.user] {
            filter[chain: name] = Chain(name: name)
        }
        nat[chain: DockerChain.docker] = Chain(name: DockerChain.docker)
        nat[chain: "POSTROUTING"] = Chain(
            name: "POSTROUTING", base: BaseChain(type: .nat, hook: .postrouting, priority: 100))
        raw[chain: "PREROUTING"] = Chain(
            name: "PREROUTING", base: BaseChain(type: .filter, hook: .prerouting, priority: -300))
    }

    /// A rule without counters and comments, as iptables-save would show Docker's.
    static func plain(_ rule: Rule) -> Rule { Rule(rule.matches, rule.action, provenance: rule.provenance) }

    /// One bridge's rules: ICC, internal drops, gateway mode, published ports' accepts and
    /// MASQUERADE, told apart by Docker's comments and shapes.
    mutating func add(_ bridge: String, of docker: Table) {
        filter[chain: DockerChain.forward].rules.append(Rule([.interface(.source, bridge)], .accept))
        let outside = Match.interface(.source, bridge, negated: true)
        for rule in docker.chain(Names.forwardIn(bridge))?.rules ?? [] {
            let comment = rule.comment?.text
            if comment == Names.iccComment, rule.action == .accept || rule.action == .drop {
                filter[chain: DockerChain.forward].rules.append(
                    Rule([.interface(.source, bridge), .interface(.destination, bridge)], rule.action))
            } else if comment == Names.internalIngressComment {
                // Internal: the subnet is in no rule of Docker's nftables firewaller.
                filter[chain: DockerChain.internal].rules.append(
                    Rule([outside, .interface(.destination, bridge)], .drop))
            } else if comment == Names.unprotectedComment {
                filter[chain: DockerChain.docker].rules.append(
                    Rule([outside, .interface(.destination, bridge)], .accept))
            } else if rule.matches == [.icmp], rule.action == .accept {
                filter[chain: DockerChain.docker].rules.append(
                    Rule([.interface(.destination, bridge), .icmp], .accept))
            } else if rule.action == .accept, rule.matches.count == 3,
                case .address(.destination, let address, false) = rule.matches[0],
                case .transport(let transport, false) = rule.matches[1], case .port = rule.matches[2]
            {
                // A published port's accept, inserted on top as iptables' DOCKER has it.
                let matches: [Match] = [
                    .address(.destination, address), outside, .interface(.destination, bridge), .transport(transport),
                    rule.matches[2],
                ]
                filter[chain: DockerChain.docker].rules.insert(Rule(matches, .accept), at: 0)
            }
        }
        for rule in docker.chain(Names.postroutingOut(bridge))?.rules ?? [] where rule.action == .masquerade {
            if let subnet = rule.matches.lazy.compactMap({ match -> IPPrefix? in
                if case .address(.source, let prefix, false) = match, !prefix.isHost { return prefix }
                return nil
            }).first {
                nat[chain: "POSTROUTING"].rules.append(
                    Rule([.address(.source, subnet), .interface(.destination, bridge, negated: true)], .masquerade))
            }
        }
    }

    /// The DNAT rules, the nat OUTPUT jump (leaving loopback to the userland proxy when it is
    /// on), and the raw drops.
    mutating func addPublishes(of docker: Table, family: TableFamily) {
        nat[chain: DockerChain.docker].rules += (docker.chain(Names.natChain)?.rules ?? []).map(Self.plain)
        if let output = docker.chain(Names.natOutput)?.rules.first {
            let guarded = output.matches.contains { if case .address = $0 { true } else { false } }
            let loopback = IPPrefix.loopback(family == .ip ? .ipv4 : .ipv6)
            nat[chain: "OUTPUT"] = Chain(
                name: "OUTPUT", base: BaseChain(type: .nat, hook: .output, priority: -100),
                rules: [
                    Rule(
                        (guarded ? [.address(.destination, loopback, negated: true)] : [])
                            + [.localAddress(.destination)], .jump(DockerChain.docker))
                ])
        }
        raw[chain: "PREROUTING"].rules += (docker.chain(Names.rawPrerouting)?.rules ?? []).map(Self.plain)
    }

    /// The policy's own rules: portcullis-user's forward chain is DOCKER-USER; its raw chain
    /// holds the exceptions and drops DOCKER-USER's flows need.
    /// Their comments (the statements they come from) and their log and counter effects are
    /// kept, as iptables-save shows them; the mark an allow sets for Docker's chains is not.
    /// The table's sets come along (`unknown-containers drop`'s set of known addresses).
    mutating func addPolicyRules(of user: Table?) {
        filter.sets += user?.sets ?? []
        filter[chain: DockerChain.user].rules += (user?.chain(Names.forward)?.rules ?? []).map { rule in
            Rule(
                rule.matches, effects: rule.effects.filter { if case .addMarkBits = $0 { false } else { true } },
                rule.action, comment: rule.comment, provenance: rule.provenance)
        }
        raw[chain: "PREROUTING"].rules += (user?.chain(Names.rawPrerouting)?.rules ?? []).map(Self.plain)
    }
}
