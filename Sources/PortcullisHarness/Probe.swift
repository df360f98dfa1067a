import Foundation

/// The smallest TCP and UDP peer that can tell a firewall's verdict: a server answers `ok` on
/// each port (a TCP connection, or a UDP datagram), and a client says whether `ok` came back
/// within a second. `portcullis test --kernel` runs both, inside throwaway namespaces, as the
/// hidden `probe` command. IPv4, as the containers' first addresses are.
public enum Probe {
    /// `80` or `80/tcp`, `53/udp`; for a server, `53/udp@192.0.2.53` binds one address (a UDP
    /// answer leaves from the address bound, and must come from the one the client asked).
    public struct Port: Sendable, Hashable, CustomStringConvertible {
        public let number: UInt16
        public let udp: Bool
        public let address: String?

        public init?(_ text: String) {
            let (spec, address) =
                text.split(separator: "@", maxSplits: 1).map(String.init).splitFirst()
            let parts = spec.split(separator: "/", maxSplits: 1)
            guard let number = parts.first.flatMap({ UInt16($0) }), number > 0,
                parts.count == 1 || ["tcp", "udp"].contains(parts[1]), address.map(inetAddress) != .some(nil)
            else { return nil }
            self.number = number
            udp = parts.count == 2 && parts[1] == "udp"
            self.address = address
        }

        /// This port, bound to one address.
        public func bound(to address: String) -> Port? { Port(description + "@" + address) }

        public var description: String {
            "\(number)/\(udp ? "udp" : "tcp")" + (address.map { "@" + $0 } ?? "")
        }
    }

    static let timeout = timeval(tv_sec: 1, tv_usec: 0)

    /// Binds every port, then answers forever; `ready` on stdout once all are bound.
    public static func serve(_ ports: [Port]) throws -> Never {
        var sockets: [(Int32, Port)] = []
        for port in ports {
            let descriptor = socket(AF_INET, Int32(port.udp ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue), 0)
            guard descriptor >= 0 else { throw ProbeError("socket: \(String(cString: strerror(errno)))") }
            var one: Int32 = 1
            setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            var address = Self.address(port.address.flatMap(inetAddress) ?? 0, port: port.number)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard bound == 0, port.udp || listen(descriptor, 16) == 0 else {
                throw ProbeError("cannot listen on \(port): \(String(cString: strerror(errno)))")
            }
            sockets.append((descriptor, port))
        }
        for (descriptor, port) in sockets {
            Thread.detachNewThread { port.udp ? answerDatagrams(descriptor) : answerConnections(descriptor) }
        }
        FileHandle.standardOutput.write(Data("ready\n".utf8))
        while true { pause() }
    }

    static func answerConnections(_ listener: Int32) {
        while true {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { continue }
            _ = "ok\n".withCString { send(connection, $0, 3, Int32(MSG_NOSIGNAL)) }
            close(connection)
        }
    }

    static func answerDatagrams(_ descriptor: Int32) {
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            var peer = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let received = withUnsafeMutablePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    recvfrom(descriptor, &buffer, 64, 0, $0, &length)
                }
            }
            guard received >= 0 else { continue }
            _ = withUnsafePointer(to: &peer) { peerPointer in
                peerPointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                    "ok\n".withCString { sendto(descriptor, $0, 3, 0, address, length) }
                }
            }
        }
    }

    /// Whether `address:port` answers `ok` within a second, sent from `source` when given.
    public static func connects(to address: String, port: Port, from source: String? = nil) -> Bool {
        guard let destination = inetAddress(address) else { return false }
        let descriptor = socket(AF_INET, Int32(port.udp ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var timeout = Self.timeout
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        if let source {
            guard let from = inetAddress(source) else { return false }
            var local = Self.address(from, port: 0)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard bound == 0 else { return false }
        }
        var remote = Self.address(destination, port: port.number)
        // A blocking connect gives up after SO_SNDTIMEO: a dropped SYN is a second's wait.
        let connected = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { return false }
        if port.udp { _ = "hello\n".withCString { send(descriptor, $0, 6, Int32(MSG_NOSIGNAL)) } }
        var answer = [UInt8](repeating: 0, count: 3)
        var read = 0
        while read < 3 {
            let count = answer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress! + read, 3 - read, 0) }
            guard count > 0 else { break }
            read += count
        }
        return answer == Array("ok\n".utf8)
    }

    /// An IPv4 address in network order.
    static func inetAddress(_ text: String) -> UInt32? {
        var address = in_addr()
        return inet_pton(AF_INET, text, &address) == 1 ? address.s_addr : nil
    }

    static func address(_ address: UInt32, port: UInt16) -> sockaddr_in {
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = port.bigEndian
        socketAddress.sin_addr = in_addr(s_addr: address)
        return socketAddress
    }
}

public struct ProbeError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

extension Array where Element == String {
    /// The first element and the second, if any.
    fileprivate func splitFirst() -> (String, String?) { (first ?? "", count > 1 ? self[1] : nil) }
}
