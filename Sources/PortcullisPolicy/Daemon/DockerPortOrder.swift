import PortcullisNet

/// The order in which Docker 20.10 programs a container's port bindings, reproduced step by
/// step because its result is not a sort by any key.
///
/// `buildSandboxOptions` (daemon/container_operations.go) takes the container's exposed ports
/// from a Go map, `map[nat.Port]struct{}`, and hands them with the port bindings to
/// go-connections' `nat.SortPortMap` (nat/sort.go). That makes one entry per binding (one with
/// no binding for a port that has none), sorts the entries with `sort.Sort` and
/// `portMapSorter.Less`, then lists each port once, where its first entry landed, with all its
/// bindings in entry order. `Less(a, b)` is `hostA > hostB || portA > portB || (portA == portB
/// && a is tcp)`, host ports of daemon-chosen bindings counting as 0: not a strict order (two
/// tcp bindings of one port are each less than the other), so the result depends on the
/// algorithm and on the input order. Debian's 20.10.24 is built with Go 1.19, whose `sort.Sort`
/// is pattern-defeating quicksort with insertion sort for 12 entries or fewer.
///
/// The input order is Go's iteration over that map. The map is decoded from the client's JSON,
/// whose keys `encoding/json` writes sorted ("443/tcp" before "80/tcp"), so a map of up to 8
/// ports sits in one bucket in that order, and Go iterates it from a random slot: one of the
/// rotations of the sorted keys. `rotations(of:)` lists them; larger maps spread over buckets
/// by a random hash seed and can come in many more orders.
public enum DockerPortOrder {
    /// A container port as go-connections names it (`nat.Port`, "80/tcp").
    public struct Port: Hashable, Sendable, Comparable, CustomStringConvertible {
        public let number: UInt16
        public let transport: TransportProtocol

        public init(_ number: UInt16, _ transport: TransportProtocol) {
            self.number = number
            self.transport = transport
        }

        public var description: String { "\(number)/\(transport.rawValue)" }

        /// `encoding/json` orders map keys as strings.
        public static func < (a: Port, b: Port) -> Bool { a.description < b.description }
    }

    /// One entry of `portMapSorter`: a port with one of its bindings, or with none.
    public struct Entry<Binding>: CustomStringConvertible {
        public let port: Port
        /// The binding's host port; 0 for a daemon-chosen one and for a port with no binding.
        public let hostPort: UInt16
        /// Nil for a port that has no binding.
        public let binding: Binding?

        public init(port: Port, hostPort: UInt16, binding: Binding?) {
            self.port = port
            self.hostPort = hostPort
            self.binding = binding
        }

        public var description: String { "\(hostPort):\(port)" }
    }

    /// `portMapSorter.Less`: higher host port, or higher container port, or the same container
    /// port and tcp.
    public static func less<B>(_ a: Entry<B>, _ b: Entry<B>) -> Bool {
        a.hostPort > b.hostPort || a.port.number > b.port.number
            || (a.port.number == b.port.number && a.port.transport == .tcp)
    }

    /// The orders in which Go iterates a map holding `ports` that was filled in sorted order:
    /// the rotations of the sorted ports, the first being the sorted order itself.
    public static func rotations(of ports: [Port]) -> [[Port]] {
        let sorted = ports.sorted()
        return sorted.indices.map { Array(sorted[$0...] + sorted[..<$0]) }
    }

    /// `nat.SortPortMap` on ports in map iteration order and each port's bindings in the
    /// order given: every port once, in the order Docker walks them, with its bindings in the
    /// order Docker programs them.
    public static func sortPortMap<Binding>(ports: [Port], bindings: [Port: [(hostPort: UInt16, binding: Binding)]])
        -> [(port: Port, bindings: [Binding])]
    {
        var entries = ports.flatMap { port in
            bindings[port].map { list in
                list.map { Entry(port: port, hostPort: $0.hostPort, binding: $0.binding) }
            } ?? [Entry(port: port, hostPort: 0, binding: nil)]
        }
        GoSort.sort(&entries, by: less)
        var seen: Set<Port> = []
        var portOrder: [Port] = []
        var reordered: [Port: [Binding]] = [:]
        for entry in entries {
            if seen.insert(entry.port).inserted { portOrder.append(entry.port) }
            if let binding = entry.binding { reordered[entry.port, default: []].append(binding) }
        }
        return portOrder.map { ($0, reordered[$0] ?? []) }
    }

    /// Every published port of a container in the order Docker 20.10 programs (and allocates)
    /// them. The `publish` lines are bindings; `publish-all` adds one per exposed port without a
    /// binding (after sorting, where the sort put the port). Exposed ports take part in the sort
    /// even without `publish-all`. Go's map order is taken to be the rotation of the sorted
    /// ports that starts at the container's first named port.
    public static func bindingOrder(of container: Container) -> [PublishedPort] {
        var bindings: [Port: [(hostPort: UInt16, binding: PublishedPort)]] = [:]
        var publishAll: [Port: PublishedPort] = [:]
        for (index, publish) in container.publishes.enumerated() {
            for offset in 0..<publish.containerPorts.count {
                let port = Port(UInt16(Int(publish.containerPorts.first) + offset), publish.transport)
                let position = PublishedPort(publish: index, offset: offset)
                if publish.fromPublishAll {
                    publishAll[port] = position
                } else {
                    let hostPort = publish.hostPortIsEphemeral ? 0 : UInt16(Int(publish.hostPorts.first) + offset)
                    bindings[port, default: []].append((hostPort, position))
                }
            }
        }
        var ports = Set(bindings.keys)
        for spec in container.exposedPorts {
            for number in spec.ports.first...spec.ports.last { ports.insert(Port(number, spec.transport)) }
        }
        let start = container.firstNamedPort.map { Port($0.ports.first, $0.transport) }
        let rotations = rotations(of: Array(ports))
        let mapOrder = rotations.first { $0.first == start } ?? rotations.first ?? []
        return sortPortMap(ports: mapOrder, bindings: bindings).flatMap { port, bound in
            bound.isEmpty ? publishAll[port].map { [$0] } ?? [] : bound
        }
    }
}

/// Go 1.19's `sort.Sort` (src/sort/zsortinterface.go): pattern-defeating quicksort, insertion
/// sort for short runs, heapsort after too many bad pivots. Ported step for step, because with
/// an inconsistent `less` only the same sequence of comparisons and swaps gives the same result.
public enum GoSort {
    public static func sort<T>(_ data: inout [T], by less: (T, T) -> Bool) {
        let n = data.count
        guard n > 1 else { return }
        data = withoutActuallyEscaping(less) { less in
            var sorter = Sorter(data: data, less: less)
            sorter.pdqsort(0, n, limit: Int.bitWidth - n.leadingZeroBitCount)
            return sorter.data
        }
    }

    private enum SortedHint {
        case unknown
        case increasing
        case decreasing
    }

    private struct Sorter<T> {
        var data: [T]
        let lessThan: (T, T) -> Bool

        init(data: [T], less: @escaping (T, T) -> Bool) {
            self.data = data
            self.lessThan = less
        }

        func less(_ i: Int, _ j: Int) -> Bool { lessThan(data[i], data[j]) }
        mutating func swap(_ i: Int, _ j: Int) { data.swapAt(i, j) }

        mutating func insertionSort(_ a: Int, _ b: Int) {
            var i = a + 1
            while i < b {
                var j = i
                while j > a && less(j, j - 1) {
                    swap(j, j - 1)
                    j -= 1
                }
                i += 1
            }
        }

        mutating func siftDown(_ lo: Int, _ hi: Int, first: Int) {
            var root = lo
            while true {
                var child = 2 * root + 1
                if child >= hi { return }
                if child + 1 < hi && less(first + child, first + child + 1) { child += 1 }
                if !less(first + root, first + child) { return }
                swap(first + root, first + child)
                root = child
            }
        }

        mutating func heapSort(_ a: Int, _ b: Int) {
            let first = a
            let hi = b - a
            var i = (hi - 1) / 2
            while i >= 0 {
                siftDown(i, hi, first: first)
                i -= 1
            }
            i = hi - 1
            while i >= 0 {
                swap(first, first + i)
                siftDown(0, i, first: first)
                i -= 1
            }
        }

        mutating func pdqsort(_ start: Int, _ end: Int, limit startLimit: Int) {
            let maxInsertion = 12
            var (a, b, limit) = (start, end, startLimit)
            var wasBalanced = true
            var wasPartitioned = true
            while true {
                let length = b - a
                if length <= maxInsertion {
                    insertionSort(a, b)
                    return
                }
                if limit == 0 {
                    heapSort(a, b)
                    return
                }
                if !wasBalanced {
                    breakPatterns(a, b)
                    limit -= 1
                }
                var (pivot, hint) = choosePivot(a, b)
                if hint == .decreasing {
                    reverseRange(a, b)
                    pivot = (b - 1) - (pivot - a)
                    hint = .increasing
                }
                if wasBalanced && wasPartitioned && hint == .increasing && partialInsertionSort(a, b) { return }
                if a > 0 && !less(a - 1, pivot) {
                    a = partitionEqual(a, b, pivot: pivot)
                    continue
                }
                let (mid, alreadyPartitioned) = partition(a, b, pivot: pivot)
                wasPartitioned = alreadyPartitioned
                let (leftLength, rightLength) = (mid - a, b - mid)
                let balanceThreshold = length / 8
                if leftLength < rightLength {
                    wasBalanced = leftLength >= balanceThreshold
                    pdqsort(a, mid, limit: limit)
                    a = mid + 1
                } else {
                    wasBalanced = rightLength >= balanceThreshold
                    pdqsort(mid + 1, b, limit: limit)
                    b = mid
                }
            }
        }

        mutating func partition(_ a: Int, _ b: Int, pivot: Int) -> (Int, Bool) {
            swap(a, pivot)
            var (i, j) = (a + 1, b - 1)
            while i <= j && less(i, a) { i += 1 }
            while i <= j && !less(j, a) { j -= 1 }
            if i > j {
                swap(j, a)
                return (j, true)
            }
            swap(i, j)
            i += 1
            j -= 1
            while true {
                while i <= j && less(i, a) { i += 1 }
                while i <= j && !less(j, a) { j -= 1 }
                if i > j { break }
                swap(i, j)
                i += 1
                j -= 1
            }
            swap(j, a)
            return (j, false)
        }

        mutating func partitionEqual(_ a: Int, _ b: Int, pivot: Int) -> Int {
            swap(a, pivot)
            var (i, j) = (a + 1, b - 1)
            while true {
                while i <= j && !less(a, i) { i += 1 }
                while i <= j && less(a, j) { j -= 1 }
                if i > j { break }
                swap(i, j)
                i += 1
                j -= 1
            }
            return i
        }

        mutating func partialInsertionSort(_ a: Int, _ b: Int) -> Bool {
            let maxSteps = 5
            let shortestShifting = 50
            var i = a + 1
            for _ in 0..<maxSteps {
                while i < b && !less(i, i - 1) { i += 1 }
                if i == b { return true }
                if b - a < shortestShifting { return false }
                swap(i, i - 1)
                if i - a >= 2 {
                    var j = i - 1
                    while j >= 1 && less(j, j - 1) {
                        swap(j, j - 1)
                        j -= 1
                    }
                }
                if b - i >= 2 {
                    var j = i + 1
                    while j < b && less(j, j - 1) {
                        swap(j, j - 1)
                        j += 1
                    }
                }
            }
            return false
        }

        mutating func breakPatterns(_ a: Int, _ b: Int) {
            let length = b - a
            guard length >= 8 else { return }
            var random = UInt64(length)
            let modulus = UInt64(1) << (UInt64.bitWidth - UInt64(length).leadingZeroBitCount)
            for index in (a + (length / 4) * 2 - 1)...(a + (length / 4) * 2 + 1) {
                // Go 1.19's xorshift.
                random ^= random << 13
                random ^= random >> 17
                random ^= random << 5
                var other = Int(random & (modulus - 1))
                if other >= length { other -= length }
                swap(index, a + other)
            }
        }

        mutating func choosePivot(_ a: Int, _ b: Int) -> (Int, SortedHint) {
            let shortestNinther = 50
            let maxSwaps = 4 * 3
            let l = b - a
            var swaps = 0
            var (i, j, k) = (a + l / 4 * 1, a + l / 4 * 2, a + l / 4 * 3)
            if l >= 8 {
                if l >= shortestNinther {
                    i = median(i - 1, i, i + 1, swaps: &swaps)
                    j = median(j - 1, j, j + 1, swaps: &swaps)
                    k = median(k - 1, k, k + 1, swaps: &swaps)
                }
                j = median(i, j, k, swaps: &swaps)
            }
            switch swaps {
            case 0: return (j, .increasing)
            case maxSwaps: return (j, .decreasing)
            default: return (j, .unknown)
            }
        }

        func order2(_ a: Int, _ b: Int, swaps: inout Int) -> (Int, Int) {
            if less(b, a) {
                swaps += 1
                return (b, a)
            }
            return (a, b)
        }

        func median(_ a: Int, _ b: Int, _ c: Int, swaps: inout Int) -> Int {
            var (a, b, c) = (a, b, c)
            (a, b) = order2(a, b, swaps: &swaps)
            (b, c) = order2(b, c, swaps: &swaps)
            (a, b) = order2(a, b, swaps: &swaps)
            return b
        }

        mutating func reverseRange(_ a: Int, _ b: Int) {
            var (i, j) = (a, b - 1)
            while i < j {
                swap(i, j)
                i += 1
                j -= 1
            }
        }
    }
}
