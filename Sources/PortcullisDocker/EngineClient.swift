import AsyncHTTPClient
import Foundation
import NIOCore

/// Reads a Docker host's inventory from its Engine API: over the daemon's unix socket
/// (`unix:///var/run/docker.sock`, the default, or `DOCKER_HOST`), or plain HTTP on a TCP
/// address. It asks the daemon's API version first and refuses daemons older than 1.41
/// (Docker 20.10); later ones are asked in their own version, since Docker 29 no longer
/// answers requests for versions before 1.44.
public struct EngineClient: Sendable {
    /// The oldest API this reads: Docker 20.10's.
    public static let minimumAPIVersion = (major: 1, minor: 41)
    public static let defaultHost = "unix:///var/run/docker.sock"

    enum Address {
        case unixSocket(String)
        case tcp(String)
    }

    /// As given: `unix:///path` or `tcp://host:port`.
    public let host: String
    let address: Address

    /// `host` is `--docker-host`; without it `DOCKER_HOST`, then the default socket.
    public init(host: String?, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(InventoryError)
    {
        let chosen = host ?? environment["DOCKER_HOST"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultHost
        self.host = chosen
        if chosen.hasPrefix("unix://") {
            address = .unixSocket(String(chosen.dropFirst("unix://".count)))
        } else if chosen.hasPrefix("tcp://") {
            address = .tcp(String(chosen.dropFirst("tcp://".count)))
        } else {
            throw InventoryError(
                "Docker host '\(chosen)' is neither unix:///PATH nor tcp://HOST:PORT",
                hint: "ssh:// and TLS hosts are not supported; forward the daemon's socket instead")
        }
    }

    /// Everything the firewall depends on, read in one pass.
    public func inventory() throws(InventoryError) -> Inventory {
        if case .unixSocket(let path) = address { try Self.checkSocket(path) }
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { try? client.syncShutdown() }
        _ = try get("/_ping", client)
        let versionText = try get("/version", client)
        var daemon = try EngineDocuments.daemon(version: versionText, info: nil)
        let prefix = try apiPrefix(daemon)
        daemon = try EngineDocuments.daemon(version: versionText, info: try get(prefix + "/info", client))
        var networks: [Inventory.Network] = []
        for entry in try JSONNode.parse(try get(prefix + "/networks", client), source: "/networks").array() {
            if let network = try EngineDocuments.network(entry) { networks.append(network) }
        }
        let listed = try JSONNode.parse(try get(prefix + "/containers/json", client), source: "/containers/json")
        var containers: [Inventory.Container] = []
        for entry in try listed.array() {
            let id = try entry.required("Id").string()
            guard id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
                throw entry.failure("'\(id)' is not a container id")
            }
            let path = "/containers/\(id)/json"
            let inspected = try JSONNode.parse(try get(prefix + path, client), source: path)
            if let container = try EngineDocuments.container(inspected) { containers.append(container) }
        }
        return .assembled(source: "docker", daemon: daemon, networks: networks, containers: containers)
    }

    /// `/v1.41`: the daemon's own API version, which must be 1.41 or later.
    func apiPrefix(_ daemon: Inventory.Daemon) throws(InventoryError) -> String {
        guard let api = Self.apiVersion(daemon.apiVersion), api >= Self.minimumAPIVersion else {
            throw InventoryError(
                "the daemon at \(host) (Docker \(daemon.version)) speaks API \(daemon.apiVersion); portcullis reads 1.41 (Docker 20.10) and later",
                hint:
                    "upgrade Docker, or save 'docker inspect' and 'docker network inspect' output for --from docker-inspect"
            )
        }
        return "/v\(daemon.apiVersion)"
    }

    /// `1.41` as numbers, compared field by field.
    static func apiVersion(_ text: String) -> (major: Int, minor: Int)? {
        let parts = text.split(separator: ".")
        guard parts.count == 2, let major = Int(parts[0]), let minor = Int(parts[1]) else { return nil }
        return (major, minor)
    }

    /// One GET; anything but 200 is an error quoting the daemon's message.
    func get(_ path: String, _ client: HTTPClient) throws(InventoryError) -> String {
        let url = try url(path)
        let response: HTTPClient.Response
        do {
            var request = try HTTPClient.Request(url: url, method: .GET)
            // A unix-socket request carries no Host header by itself, and Go's HTTP/1.1 server
            // refuses a request without one.
            request.headers.replaceOrAdd(name: "Host", value: "localhost")
            response = try client.execute(request: request, deadline: .now() + .seconds(30)).wait()
        } catch {
            throw InventoryError(
                "cannot read \(path) from the Docker daemon at \(host): \(error)",
                hint: "is dockerd running and listening there?")
        }
        var body = ""
        if var buffer = response.body { body = buffer.readString(length: buffer.readableBytes) ?? "" }
        guard response.status.code == 200 else {
            let message = (try? JSONNode.parse(body, source: path).optional("message")?.string()) ?? body
            throw InventoryError("\(host) answered \(path) with \(response.status.code): \(message)")
        }
        return body
    }

    /// The URL of `path` (with its query) on the daemon.
    func url(_ path: String) throws(InventoryError) -> URL {
        let url: URL?
        switch address {
        case .unixSocket(let socket): url = URL(httpURLWithSocketPath: socket, uri: path)
        case .tcp(let authority): url = URL(string: "http://\(authority)\(path)")
        }
        guard let url else { throw InventoryError("cannot make a URL of \(host) and \(path)") }
        return url
    }

    /// Tells a missing socket, a refused connection and a permission problem apart before the
    /// HTTP client does, whose errors say less.
    static func checkSocket(_ path: String) throws(InventoryError) {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw InventoryError("cannot make a socket: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else { throw InventoryError("socket path \(path) is too long") }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: path.utf8)
            buffer[path.utf8.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result != 0 else { return }
        switch errno {
        case ENOENT:
            throw InventoryError(
                "no Docker daemon at unix://\(path): the socket does not exist",
                hint: "is dockerd running? --docker-host or DOCKER_HOST name another socket")
        case ECONNREFUSED:
            throw InventoryError(
                "the Docker daemon at unix://\(path) refused the connection",
                hint: "dockerd has stopped or is restarting; the socket file is left over")
        case EACCES, EPERM:
            throw InventoryError(
                "permission denied on unix://\(path)",
                hint: "run as root or as a member of the socket's group (usually 'docker')")
        default:
            throw InventoryError("cannot connect to unix://\(path): \(String(cString: strerror(errno)))")
        }
    }
}
