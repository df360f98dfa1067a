import PortcullisNet

public enum Direction: String, Sendable, Hashable {
    case source
    case destination
}

/// Connection-tracking states (`ct state` / `--ctstate`).
public enum ConnectionState: String, Sendable, Hashable, CaseIterable {
    case invalid
    case new
    case related
    case established
    case untracked
}

/// A rate for `limit`: `count` per `unit`.
public struct Rate: Sendable, Hashable {
    public typealias Unit = TimeUnit

    public var count: Int
    public var unit: Unit

    public init(count: Int, unit: Unit) {
        self.count = count
        self.unit = unit
    }
}

/// One condition of a rule. Each case has a direct iptables and nftables spelling.
public enum Match: Sendable, Hashable {
    /// `-s` / `-d`, `ip saddr` / `ip daddr`.
    case address(Direction, IPPrefix, negated: Bool = false)
    /// `-i` / `-o`, `iifname` / `oifname`; `Direction.source` is the input interface.
    case interface(Direction, String, negated: Bool = false)
    /// `-p tcp`, `meta l4proto tcp` (implied by a port match in nft).
    case transport(TransportProtocol, negated: Bool = false)
    /// The ICMP of the table's family: `-p icmp` / `-p ipv6-icmp`, `ip protocol icmp` /
    /// `meta l4proto ipv6-icmp` (Docker accepts it into routed networks).
    case icmp
    /// `meta l4proto { tcp, udp, sctp }` (nftables only): one of several protocols, which nft
    /// requires before a NAT statement maps to a port.
    case transports([TransportProtocol])
    /// `-m tcp --dport 80`, `tcp dport 80`; needs a `.transport` match in the same rule.
    case port(Direction, PortRange)
    /// `-m addrtype --dst-type LOCAL`, `fib daddr type local`.
    case localAddress(Direction, negated: Bool = false)
    /// `-m conntrack --ctstate ...`, `ct state ...`.
    case connectionState(Set<ConnectionState>)
    /// `-m conntrack --ctstate DNAT`, `ct status dnat`: the connection's destination was
    /// translated (it arrived through a published port); negated, it was not.
    case destinationTranslated(negated: Bool = false)
    /// `-m conntrack --ctorigdst A`, `ct original ip daddr A`: the destination before DNAT.
    case originalDestination(IPPrefix)
    /// `-m conntrack --ctorigdstport P`, `ct original proto-dst P`: the port before DNAT.
    case originalDestinationPort(PortRange)
    /// `-m limit --limit N/unit`, `limit rate N/unit`.
    case limit(Rate)
    /// `meta mark & MASK == VALUE` (`meta mark VALUE` without a mask), `-m mark --mark VALUE/MASK`:
    /// the packet's firewall mark, as Docker's `--bridge-accept-fwmark` rule tests it.
    case mark(UInt32, mask: UInt32? = nil)
    /// A lookup of the packet's fields in a named set (nftables only).
    case inSet(keys: [SetKeyField], set: String, negated: Bool = false)
    /// A match module read from a live ruleset that Portcullis does not model, kept verbatim
    /// (`-m physdev --physdev-in veth0`) so that nothing read is dropped.
    case opaque(String)

    /// Field order in `iptables-save` output: address, interface and protocol options print
    /// first, in this order; match modules (`-m`) follow in the order they were given.
    public var iptablesCoreOrder: Int? {
        switch self {
        case .address(.source, _, _): 0
        case .address(.destination, _, _): 1
        case .interface(.source, _, _): 2
        case .interface(.destination, _, _): 3
        case .transport, .icmp: 4
        default: nil
        }
    }
}

/// A packet field used as (part of) a set or map key in the native layout.
public enum SetKeyField: String, Sendable, Hashable {
    case sourceAddress
    case destinationAddress
    case inputInterface
    case outputInterface
    case transport
    case destinationPort
    case originalDestinationAddress
    case originalDestinationPort
}

/// Statements that run without ending evaluation.
public enum Effect: Sendable, Hashable {
    /// nft `counter`; iptables counts every rule, so it renders as nothing there.
    case counter
    /// `-j LOG --log-prefix P` (a rule of its own in iptables), `log prefix P`.
    case log(prefix: RuleComment)
    /// `meta mark set meta mark | BITS`: adds bits to the packet's firewall mark (nftables only;
    /// iptables would need a MARK rule of its own).
    case addMarkBits(UInt32)
}

/// What happens to a packet that matched: verdicts, jumps, and address translation.
public enum Action: Sendable, Hashable {
    case accept
    case drop
    case `return`
    case jump(String)
    case goto(String)
    /// Destination NAT to an address and optionally a port or port range.
    case dnat(IPAddress, PortRange?)
    /// Source NAT to a fixed address.
    case snat(IPAddress)
    case masquerade
    /// `-j CHECKSUM --checksum-fill` (Docker writes it for SCTP publishes; no nft equivalent).
    case checksumFill
    /// A verdict map lookup (`... vmap @name`), native layout only.
    case verdictMap(keys: [SetKeyField], map: String)
    /// Destination NAT to the address one map yields for the packet's fields, and to the port a
    /// second map yields when given (`dnat ip to KEYS map @addresses : KEYS map @ports`); the
    /// rule does not apply when either lookup finds nothing. nftables only. (Two maps rather
    /// than one with concatenated data: libnftables 1.0.6 cannot read such a map as JSON.)
    case dnatMap(IPFamily, keys: [SetKeyField], addressMap: String, portMap: String?)
    /// A target read from a live ruleset that Portcullis does not model, kept verbatim
    /// (`TCPMSS --clamp-mss-to-pmtu`).
    case opaque(String)
}

/// Text a policy places in a ruleset (comments, log prefixes), checked by `RulesetText` so that
/// it can never close a quoted token in nft or iptables-restore syntax.
public struct RuleComment: Sendable, Hashable, CustomStringConvertible {
    public let text: String

    public init?(_ text: String) {
        guard RulesetText.problem(in: text) == nil else { return nil }
        self.text = text
    }

    public var description: String { text }
}
