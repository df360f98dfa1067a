import PortcullisNet

/// The subnets of the networks declared so far, of one address family, indexed so that the
/// networks a new subnet overlaps are found without comparing it with every earlier one.
///
/// Two prefixes overlap exactly when one contains the other. Earlier subnets that contain a new
/// one are found by looking the new one up masked to each prefix length in use; earlier subnets
/// inside it are listed under each shorter prefix that contains them, for the lengths in use. So
/// adding a subnet costs one look-up per length in use (at most 33 or 129), however many
/// networks overlap, and N networks cost O(N) look-ups where a pairwise check cost N².
struct SubnetOverlaps {
    /// Who a subnet overlaps: how many earlier networks, and the first few by declaration order.
    struct Found {
        var count = 0
        /// Positions in declaration order, at most `SubnetOverlaps.named` of them.
        var first: [Int] = []
    }

    /// How many overlapping networks a diagnostic names; the rest are counted.
    static let named = 3

    /// Earlier networks by their subnet, in declaration order.
    private var exact: [IPPrefix: [Int]] = [:]
    /// Earlier networks by each prefix of a length in use that strictly contains their subnet.
    private var inside: [IPPrefix: [Int]] = [:]
    private var lengths: [Int] = []
    private var subnets: [(position: Int, subnet: IPPrefix)] = []

    /// Adds the subnet of the network at `position` (positions increase) and returns the
    /// earlier networks it overlaps.
    mutating func add(_ subnet: IPPrefix, position: Int) -> Found {
        if !lengths.contains(subnet.length) {
            // A new length: list every earlier subnet inside its prefix of that length.
            for earlier in subnets where earlier.subnet.length > subnet.length {
                inside[Self.prefix(of: earlier.subnet, length: subnet.length), default: []].append(earlier.position)
            }
            lengths.append(subnet.length)
        }
        var lists: [[Int]] = []
        for length in lengths where length <= subnet.length {
            if let holders = exact[Self.prefix(of: subnet, length: length)] { lists.append(holders) }
        }
        if let contained = inside[Self.prefix(of: subnet, length: subnet.length)] { lists.append(contained) }
        var found = Found()
        found.count = lists.reduce(0) { $0 + $1.count }
        found.first = Array(lists.flatMap { $0.prefix(Self.named) }.sorted().prefix(Self.named))

        exact[Self.prefix(of: subnet, length: subnet.length), default: []].append(position)
        for length in lengths where length < subnet.length {
            inside[Self.prefix(of: subnet, length: length), default: []].append(position)
        }
        subnets.append((position, subnet))
        return found
    }

    static func prefix(of subnet: IPPrefix, length: Int) -> IPPrefix {
        IPPrefix(address: subnet.address.masked(prefixLength: length), length: length)
    }
}
