import Glibc

/// The kernel's nftables ruleset generation in the current network namespace: a counter that
/// every committed nftables transaction (any table, any tool, iptables-nft included) moves on.
/// Equal numbers before and after mean nothing was committed in between, which lets `apply`
/// skip listing a large table just to find out that nobody touched it.
///
/// libnftables does not expose it, so this asks nfnetlink directly (`NFT_MSG_GETGEN`).
public enum RulesetGeneration {
    static let subsystemNftables: UInt16 = 10  // NFNL_SUBSYS_NFTABLES
    static let getGeneration: UInt16 = 16  // NFT_MSG_GETGEN
    static let newGeneration: UInt16 = 15  // NFT_MSG_NEWGEN, the answer
    static let generationID: UInt16 = 1  // NFTA_GEN_ID
    // From <linux/netlink.h>, which Glibc's module does not carry (and which clashes with it
    // when a C module includes it).
    static let netlinkNetfilter: Int32 = 12  // NETLINK_NETFILTER
    static let requestFlag: UInt16 = 1  // NLM_F_REQUEST

    /// The current generation, or nil when the kernel cannot be asked (no permission, no nftables).
    public static func current() -> UInt32? {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), netlinkNetfilter)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))

        // nlmsghdr (16 bytes) + nfgenmsg (4 bytes), little-endian host order except res_id.
        var request = [UInt8](repeating: 0, count: 20)
        func put32(_ value: UInt32, at offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { request.replaceSubrange(offset..<offset + 4, with: $0) }
        }
        func put16(_ value: UInt16, at offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { request.replaceSubrange(offset..<offset + 2, with: $0) }
        }
        put32(20, at: 0)  // nlmsg_len
        put16(subsystemNftables << 8 | getGeneration, at: 4)  // nlmsg_type
        put16(requestFlag, at: 6)  // nlmsg_flags
        put32(1, at: 8)  // nlmsg_seq
        request[16] = UInt8(AF_UNSPEC)  // nfgen_family
        request[17] = 0  // NFNETLINK_V0
        // struct sockaddr_nl: family, padding, port id 0 (the kernel), no groups.
        var address = [UInt8](repeating: 0, count: 12)
        withUnsafeBytes(of: UInt16(AF_NETLINK).littleEndian) { address.replaceSubrange(0..<2, with: $0) }
        let sent = address.withUnsafeBytes { raw in
            sendto(
                fd, request, request.count, 0, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self),
                socklen_t(raw.count))
        }
        guard sent == request.count else { return nil }

        var reply = [UInt8](repeating: 0, count: 4096)
        let received = recv(fd, &reply, reply.count, 0)
        guard received >= 20 else { return nil }
        func get16(_ offset: Int) -> UInt16 { UInt16(reply[offset]) | UInt16(reply[offset + 1]) << 8 }
        func get32le(_ offset: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(reply[offset + $1]) << (8 * $1) } }
        // An error reply (NLMSG_ERROR) or anything else than the generation message.
        guard get16(4) == subsystemNftables << 8 | newGeneration else { return nil }
        let length = min(Int(get32le(0)), received)
        var offset = 20
        while offset + 4 <= length {
            let attributeLength = Int(get16(offset))
            let type = get16(offset + 2) & 0x3FFF  // without NLA_F_NESTED / NLA_F_NET_BYTEORDER
            guard attributeLength >= 4 else { return nil }
            if type == generationID && attributeLength >= 8 {
                // Attribute payloads are in network byte order.
                return (0..<4).reduce(0) { $0 << 8 | UInt32(reply[offset + 4 + $1]) }
            }
            offset += (attributeLength + 3) & ~3
        }
        return nil
    }
}
