import PortcullisIR

/// What Portcullis owns when it runs alongside a Docker daemon that keeps writing its own rules
/// (`--alongside-docker`): only the place each layout already puts the policy's own rules, where
/// Docker tells users to put theirs. Docker's chains and tables stay the daemon's.
///
/// - `docker-20.10`, `docker-28`, `docker-29` on iptables: the `DOCKER-USER` chain of the
///   `filter` table, IPv4 and IPv6 (the jump to it from `FORWARD` is Docker's, kept first by
///   `apply`).
/// - `docker-29` on nftables: the whole `portcullis-user` tables (`ip`, `ip6`).
///
/// `project` selects that part of a layout's ruleset, so compile, plan, apply and audit all see
/// the same owned part.
public struct AlongsideDocker: Sendable, Equatable {
    /// Where the owned rules are.
    public enum Place: Sendable, Equatable {
        /// A user chain of an iptables table, in every family that has it.
        case chain(table: String, name: String)
        /// Whole nftables tables of this name, in every family.
        case table(name: String)
    }

    public let place: Place

    public init(place: Place) { self.place = place }

    /// The name of the owned chain or table, for messages and the state directory.
    public var placeName: String {
        switch place {
        case .chain(_, let name), .table(let name): name
        }
    }

    /// Why a layout or backend cannot run alongside Docker, with what to do instead.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public let message: String
        public let hint: String
        public var description: String { "\(message); \(hint)" }
    }

    /// The owned place of `layout` written for `firewall`, or why there is none.
    public static func scope(layout: String, firewall: Firewall) -> Result<AlongsideDocker, Refusal> {
        let layoutFamily = Docker2010Layout.names.contains(layout) ? Docker2010Layout.name : layout
        switch (layoutFamily, firewall) {
        case (Docker2010Layout.name, .iptables), (Docker28Layout.name, .iptables), (Docker29Layout.name, .iptables):
            return .success(
                AlongsideDocker(place: .chain(table: XtablesTableKind.filter.rawValue, name: DockerChain.user)))
        case (Docker29Layout.name, .nftables):
            return .success(AlongsideDocker(place: .table(name: Docker29NftablesRules.userTable)))
        case (Docker2010Layout.name, .nftables), (Docker28Layout.name, .nftables):
            return .failure(
                Refusal(
                    message:
                        "--alongside-docker: layout \(layout) on nftables is a translation of Docker's iptables chains into the 'ip filter' table, which the daemon owns",
                    hint: "use --backend iptables, where Portcullis owns only DOCKER-USER"))
        case (Docker15Layout.name, _):
            return .failure(
                Refusal(
                    message:
                        "--alongside-docker: layout \(layout) has no DOCKER-USER chain (Docker added it in 17.06), so there is no place Docker leaves to users",
                    hint:
                        "apply without --alongside-docker (Portcullis then owns Docker's chains), or use a layout of a newer Docker (docker-20.10 to docker-29)"
                ))
        case (NativeLayout.name, _):
            return .failure(
                Refusal(
                    message:
                        "--alongside-docker: layout native is for daemons run with \"iptables\": false, which write no rules to run alongside",
                    hint: "apply without --alongside-docker: the native layout owns its whole table"))
        default:
            return .failure(
                Refusal(
                    message: "--alongside-docker: layout \(layout) has no place reserved for users' rules",
                    hint: "apply without --alongside-docker"))
        }
    }

    /// The owned part of a layout's ruleset: for a chain, each table of that name reduced to
    /// the chain (no built-in chains, so loading it with `iptables-restore --noflush` touches
    /// nothing else); for a table, the tables of that name. Families without the place are left
    /// out.
    public func project(_ ruleset: Ruleset) -> Ruleset {
        switch place {
        case .chain(let tableName, let chainName):
            return Ruleset(
                tables: ruleset.tables.compactMap { table in
                    guard table.name == tableName, table.family != .inet, let chain = table.chain(chainName) else {
                        return nil
                    }
                    return Table(family: table.family, name: table.name, chains: [chain])
                })
        case .table(let name):
            return Ruleset(tables: ruleset.tables.filter { $0.name == name })
        }
    }

    /// The policy's own rules (commented `portcullis: ...`) that the layout writes outside the
    /// owned place, which running alongside leaves out: docker-28's and docker-29's raw
    /// `PREROUTING` exceptions for an `allow` across bridges, say. Docker's own rules decide
    /// that traffic then.
    public func leftOut(_ ruleset: Ruleset) -> [Rule] {
        let owned = project(ruleset)
        return ruleset.tables.flatMap { table in
            table.chains.filter { chain in owned.table(table.family, table.name)?.chain(chain.name) == nil }
                .flatMap { chain in
                    chain.rules.filter { $0.comment?.text.hasPrefix("portcullis: ") ?? false }
                }
        }
    }
}
