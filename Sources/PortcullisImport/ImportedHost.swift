/// What an import read from a host's rules, in the policy language's terms: host settings,
/// networks, containers with their publishes, groups and flows, and the notes a reader needs.
/// `syntax(path:)` says it as a syntax tree, which `import` prints and `explain` checks (no
/// policy text is put together by hand). Values are spelled as policies spell them
/// (`198.18.0.0/24`, `8080-8081`, `80/tcp`).
public struct ImportedHost: Sendable {
    /// Comment lines for the top of the policy: where it comes from, how things were named.
    public var header: [String] = []
    /// Host settings, in the order written.
    public var settings: [HostSetting] = []
    public var networks: [Network] = []
    public var containers: [Container] = []
    public var groups: [Group] = []
    /// `addresses` sets (a `Group` of addresses), declared after the host block.
    public var addressSets: [Group] = []
    /// `service` lists (a `Group` of `PORTS/PROTOCOL`), declared after the address sets.
    public var services: [Group] = []
    /// A comment line above the flows: where they were read.
    public var flowsHeading: String?
    public var flows: [Flow] = []
    /// What the rules do not say and the policy had to assume (it changes no rule), one line each.
    public var assumed: [String] = []
    /// What could not be imported, one line each.
    public var notImported: [String] = []

    public enum HostSetting: Sendable, Hashable {
        case layout(String)
        case backend(String)
        case userlandProxyOff
        case ip6tablesOn
        /// `accept` or `drop`.
        case forwardPolicy(String)
        case external([String])
        case logDrops(rate: String?, prefix: String)
        case countDropsOn
        case unknownContainersDrop
    }

    public struct Network: Sendable, Hashable {
        public var name: String
        public var bridge: String
        /// The IPv4 subnet, then the IPv6 one if there is one.
        public var subnets: [String]
        /// Gateways that are not the subnet's first address, IPv4's first.
        public var gateways: [String] = []
        public var `internal` = false
        public var iccDeny = false
        public var masqueradeOff = false
        /// `routed` or `nat-unprotected`.
        public var gatewayMode: String?
        /// The host address publishes bind to when they name none.
        public var hostBinding: String?
    }

    public struct Container: Sendable, Hashable {
        public var name: String
        /// `attach` lines, in the order Docker connected the networks.
        public var attachments: [Attachment]
        public var publishes: [Publish] = []
        /// `PORTS/PROTOCOL` each, for one `expose` line.
        public var exposed: [String] = []
        public var publishAll = false

        /// A container on one network: its IPv4 address, then its IPv6 one if it has one.
        public init(name: String, network: String, addresses: [String]) {
            self.name = name
            self.attachments = addresses.map { Attachment(network: network, address: $0) }
        }

        public init(name: String, attachments: [Attachment]) {
            self.name = name
            self.attachments = attachments
        }
    }

    public struct Attachment: Sendable, Hashable {
        public var network: String
        public var address: String
        public var mac: String?

        public init(network: String, address: String, mac: String? = nil) {
            self.network = network
            self.address = address
            self.mac = mac
        }
    }

    public struct Publish: Sendable, Hashable {
        /// `[ADDRESS:]PORTS`; nil when the daemon chose the host port, or a routed network
        /// maps none.
        public var hostSide: String?
        /// `PORTS/PROTOCOL`.
        public var containerSide: String
        /// The `from` allow-list.
        public var sources: [String] = []
        /// The host port the daemon chose, where it is written (`chosen PORT`).
        public var chosen: String?
    }

    public struct Group: Sendable, Hashable {
        public var name: String
        public var members: [String]
    }

    public struct Flow: Sendable, Hashable, CustomStringConvertible {
        public enum Kind: String, Sendable, Hashable {
            case allow
            case deny
            case egress
        }

        public var kind: Kind
        public var source: String
        public var destination: String
        /// `PORTS/PROTOCOL` each.
        public var ports: [String]
        /// A comment line above the statement.
        public var comment: String?
        /// The service that names the ports, written instead of them.
        public var service: String?

        /// The statement as a policy says it, for messages.
        public var description: String {
            "\(kind.rawValue) \(source) -> \(destination)"
                + (ports.isEmpty ? "" : " port " + ports.joined(separator: ", "))
        }
    }
}
