"""The SIP torture test messages of RFC 4475 §3, byte for byte.

Transcribed from the RFC's text using its conventions (§2): lines end in CRLF,
<allOneLine> joins lines, <hex> gives raw bytes, <repeat> repeats a string.

Every ``data`` value equals, byte for byte, the file ``<name>.dat`` of the RFC's
Appendix A archive (base64, gzip-compressed tar; the decoded archive passes the
gzip CRC check).  The archive holds one more file, ``test.dat``, that no section
of the RFC describes; it is not included.  Where the §3 text and the archive
differ, the archive is followed:

* ``trws``: the archive's Via header field reads ``host1.examle.com`` (sic); the
  §3 text shows ``host1.example.com``.
* ``dblreq``: the archive has an extra CRLF between the REGISTER (whose
  Content-Length is 0) and the trailing INVITE octets, and one after them.
* ``multi01`` and ``mcl01`` end in an extra CRLF after the body text; for
  ``multi01`` that CRLF is counted in its ``l: 154``.
* ``baddn`` ends after ``l: 0`` CRLF: the archive has no empty line ending
  its header section (every other message without a body has one).

The text cannot show these: trailing CRLFs and the empty line that ends a
header section are implicit in §3 and explicit in the archive.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class TortureMessage:
    """One RFC 4475 §3 test message and what the RFC says a receiver does with it."""

    name: str  # the RFC's short name, e.g. "wsinv" (the .dat file name)
    section: str  # e.g. "3.1.1.1"
    title: str  # the section title
    valid: bool  # syntactically valid per RFC 4475 (False for all of §3.1.2)
    expected: str  # what a receiving element must do, per the RFC's text
    data: bytes


MESSAGES: tuple[TortureMessage, ...] = (
    TortureMessage(
        name="wsinv",
        section="3.1.1.1",
        title="A Short Tortuous INVITE",
        valid=True,
        expected=(
            "parse as well-formed; an endpoint ignores the unknown header fields (a proxy forwards"
            " them unchanged)"
        ),
        data=(
            b"INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n"
            b"TO :\r\n"
            b" sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n"
            b'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\r\n'
            b"  ;\r\n"
            b"  tag = 98asjd8\r\n"
            b"MaX-fOrWaRdS: 0068\r\n"
            b"Call-ID: wsinv.ndaksdj@192.0.2.1\r\n"
            b"Content-Length   : 150\r\n"
            b"cseq: 0009\r\n"
            b"  INVITE\r\n"
            b"Via  : SIP  /   2.0\r\n"
            b" /UDP\r\n"
            b"    192.0.2.2;branch=390skdjuw\r\n"
            b"s :\r\n"
            b"NewFangledHeader:   newfangled value\r\n"
            b" continued newfangled value\r\n"
            b"UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n"
            b"Content-Type: application/sdp\r\n"
            b"Route:\r\n"
            b" <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\n"
            b"v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n"
            b"  branch  =   z9hG4bK9ikj8  ,\r\n"
            b" SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n"
            b" z9hG4bK30239\r\n"
            b'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\r\n'
            b"      newvalue ;\r\n"
            b"  secondparam ; q = 0.33\r\n"
            b"\r\n"
            b"v=0\r\n"
            b"o=mhandley 29739 7272939 IN IP4 192.0.2.3\r\n"
            b"s=-\r\n"
            b"c=IN IP4 192.0.2.4\r\n"
            b"t=0 0\r\n"
            b"m=audio 49217 RTP/AVP 0 12\r\n"
            b"m=video 3227 RTP/AVP 31\r\n"
            b"a=rtpmap:31 LPC\r\n"
        ),
    ),
    TortureMessage(
        name="intmeth",
        section="3.1.1.2",
        title="Wide Range of Valid Characters",
        valid=True,
        expected=(
            "parse as well-formed; an endpoint responds 501 listing its methods in Allow (a proxy "
            "forwards it, or responds 404 if the URI is unknown)"
        ),
        data=(
            b"!interesting-Method0123456789_*+`.%indeed'~"
            b" sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
            b":&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0\r\n"
            b"Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\r\n"
            b'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f"'
            b" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>\r\n"
            b"From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%="
            b'"\xd1\x80\xd0\xb0\xd0\xb1\xd0\xbe\xd1\x82\xd0\xb0\xd1\x8e\xd1\x89\xd0\xb8\xd0\xb9'
            b"\";tag=_token~1'+`*%!-.\r\n"
            b"Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\r\n"
            b"CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\r\n"
            b"Max-Forwards: 255\r\n"
            b"extensionHeader-!.%*+_`'~:\xef\xbb\xbf\xe5\xa4\xa7\xe5\x81\x9c\xe9\x9b\xbb\r\n"
            b"Content-Length: 0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="esc01",
        section="3.1.1.3",
        title="Valid Use of the % Escaping Mechanism",
        valid=True,
        expected=(
            "parse as well-formed; treat % HEX HEX in the URIs as the encoded character, never "
            "unescaping recursively (value%41 is not valueA)"
        ),
        data=(
            b"INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0\r\n"
            b"To: sip:%75se%72@example.com\r\n"
            b"From: <sip:I%20have%20spaces@example.net>;tag=938\r\n"
            b"Max-Forwards: 87\r\n"
            b"i: esc01.239409asdfakjkn23onasd0-3234\r\n"
            b"CSeq: 234234 INVITE\r\n"
            b"Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw\r\n"
            b"C: application/sdp\r\n"
            b"Contact:\r\n"
            b"  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>\r\n"
            b"Content-Length: 150\r\n"
            b"\r\n"
            b"v=0\r\n"
            b"o=mhandley 29739 7272939 IN IP4 192.0.2.1\r\n"
            b"s=-\r\n"
            b"c=IN IP4 192.0.2.1\r\n"
            b"t=0 0\r\n"
            b"m=audio 49217 RTP/AVP 0 12\r\n"
            b"m=video 3227 RTP/AVP 31\r\n"
            b"a=rtpmap:31 LPC\r\n"
        ),
    ),
    TortureMessage(
        name="escnull",
        section="3.1.1.4",
        title="Escaped Nulls in URIs",
        valid=True,
        expected=(
            "parse as well-formed; register two distinct contacts without shortening the AOR's "
            "user part at the escaped null"
        ),
        data=(
            b"REGISTER sip:example.com SIP/2.0\r\n"
            b"To: sip:null-%00-null@example.com\r\n"
            b"From: sip:null-%00-null@example.com;tag=839923423\r\n"
            b"Max-Forwards: 70\r\n"
            b"Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd\r\n"
            b"CSeq: 14398234 REGISTER\r\n"
            b"Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\r\n"
            b"Contact: <sip:%00@host5.example.com>\r\n"
            b"Contact: <sip:%00%00@host5.example.com>\r\n"
            b"L:0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="esc02",
        section="3.1.1.5",
        title="Use of % When It Is Not an Escape",
        valid=True,
        expected=(
            "parse as well-formed; an endpoint responds 501 because RE%47IST%45R is not REGISTER "
            "(the message has two Contact values, not three)"
        ),
        data=(
            b"RE%47IST%45R sip:registrar.example.com SIP/2.0\r\n"
            b'To: "%Z%45" <sip:resource@example.com>\r\n'
            b'From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23\r\n'
            b"Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf\r\n"
            b"Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234\r\n"
            b"CSeq: 29344 RE%47IST%45R\r\n"
            b"Max-Forwards: 70\r\n"
            b"Contact: <sip:alias1@host1.example.com>\r\n"
            b"C%6Fntact: <sip:alias2@host2.example.com>\r\n"
            b"Contact: <sip:alias3@host3.example.com>\r\n"
            b"l: 0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="lwsdisp",
        section="3.1.1.6",
        title="Message with No LWS between Display Name and <",
        valid=True,
        expected="accept as well-formed despite the missing LWS between the display name and <",
        data=(
            b"OPTIONS sip:user@example.com SIP/2.0\r\n"
            b"To: sip:user@example.com\r\n"
            b"From: caller<sip:caller@example.com>;tag=323\r\n"
            b"Max-Forwards: 70\r\n"
            b"Call-ID: lwsdisp.1234abcd@funky.example.com\r\n"
            b"CSeq: 60 OPTIONS\r\n"
            b"Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\r\n"
            b"l: 0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="longreq",
        section="3.1.1.7",
        title="Long Values in Header Fields",
        valid=True,
        expected="parse as well-formed despite the many and very long header field values",
        data=(
            b"INVITE sip:user@example.com SIP/2.0\r\n"
            b'To: "I have a user name of '
            + (b"extreme" * 10)
            + b' proportion"<sip:user@example.com:6000;unknownparam1=very'
            + (b"long" * 20)
            + b"value;longparam"
            + (b"name" * 25)
            + b"=shortvalue;very"
            + (b"long" * 25)
            + b"ParameterNameWithNoValue>\r\n"
            b"F: sip:"
            + (b"amazinglylongcallername" * 5)
            + b"@example.net;tag=12"
            + (b"982" * 50)
            + b"424;unknownheaderparam"
            + (b"name" * 20)
            + b"=unknowheaderparam"
            + (b"value" * 15)
            + b";unknownValueless"
            + (b"paramname" * 10)
            + b"\r\n"
            b"Call-ID: longreq.one" + (b"really" * 20) + b"longcallid\r\n"
            b"CSeq: 3882340 INVITE\r\n"
            b"Unknown-"
            + (b"Long" * 20)
            + b"-Name: unknown-"
            + (b"long" * 20)
            + b"-value; unknown-"
            + (b"long" * 20)
            + b"-parameter-name = unknown-"
            + (b"long" * 20)
            + b"-parameter-value\r\n"
            b"Via: SIP/2.0/TCP sip33.example.com\r\n"
            b"v: SIP/2.0/TCP sip32.example.com\r\n"
            b"V: SIP/2.0/TCP sip31.example.com\r\n"
            b"Via: SIP/2.0/TCP sip30.example.com\r\n"
            b"ViA: SIP/2.0/TCP sip29.example.com\r\n"
            b"VIa: SIP/2.0/TCP sip28.example.com\r\n"
            b"VIA: SIP/2.0/TCP sip27.example.com\r\n"
            b"via: SIP/2.0/TCP sip26.example.com\r\n"
            b"viA: SIP/2.0/TCP sip25.example.com\r\n"
            b"vIa: SIP/2.0/TCP sip24.example.com\r\n"
            b"vIA: SIP/2.0/TCP sip23.example.com\r\n"
            b"V :  SIP/2.0/TCP sip22.example.com\r\n"
            b"v :  SIP/2.0/TCP sip21.example.com\r\n"
            b"V  : SIP/2.0/TCP sip20.example.com\r\n"
            b"v  : SIP/2.0/TCP sip19.example.com\r\n"
            b"Via : SIP/2.0/TCP sip18.example.com\r\n"
            b"Via  : SIP/2.0/TCP sip17.example.com\r\n"
            b"Via: SIP/2.0/TCP sip16.example.com\r\n"
            b"Via: SIP/2.0/TCP sip15.example.com\r\n"
            b"Via: SIP/2.0/TCP sip14.example.com\r\n"
            b"Via: SIP/2.0/TCP sip13.example.com\r\n"
            b"Via: SIP/2.0/TCP sip12.example.com\r\n"
            b"Via: SIP/2.0/TCP sip11.example.com\r\n"
            b"Via: SIP/2.0/TCP sip10.example.com\r\n"
            b"Via: SIP/2.0/TCP sip9.example.com\r\n"
            b"Via: SIP/2.0/TCP sip8.example.com\r\n"
            b"Via: SIP/2.0/TCP sip7.example.com\r\n"
            b"Via: SIP/2.0/TCP sip6.example.com\r\n"
            b"Via: SIP/2.0/TCP sip5.example.com\r\n"
            b"Via: SIP/2.0/TCP sip4.example.com\r\n"
            b"Via: SIP/2.0/TCP sip3.example.com\r\n"
            b"Via: SIP/2.0/TCP sip2.example.com\r\n"
            b"Via: SIP/2.0/TCP sip1.example.com\r\n"
            b"Via: SIP/2.0/TCP host.example.com;received=192.0.2.5;branch=very"
            + (b"long" * 50)
            + b"branchvalue\r\n"
            b"Max-Forwards: 70\r\n"
            b"Contact: <sip:" + (b"amazinglylongcallername" * 5) + b"@host5.example.net>\r\n"
            b"Content-Type: application/sdp\r\n"
            b"l: 150\r\n"
            b"\r\n"
            b"v=0\r\n"
            b"o=mhandley 29739 7272939 IN IP4 192.0.2.1\r\n"
            b"s=-\r\n"
            b"c=IN IP4 192.0.2.1\r\n"
            b"t=0 0\r\n"
            b"m=audio 49217 RTP/AVP 0 12\r\n"
            b"m=video 3227 RTP/AVP 31\r\n"
            b"a=rtpmap:31 LPC\r\n"
        ),
    ),
    TortureMessage(
        name="dblreq",
        section="3.1.1.8",
        title="Extra Trailing Octets in a UDP Datagram",
        valid=True,
        expected=(
            "handle the REGISTER normally (Content-Length 0) and ignore the trailing octets that "
            "look like an INVITE"
        ),
        data=(
            b"REGISTER sip:example.com SIP/2.0\r\n"
            b"To: sip:j.user@example.com\r\n"
            b"From: sip:j.user@example.com;tag=43251j3j324\r\n"
            b"Max-Forwards: 8\r\n"
            b"I: dblreq.0ha0isndaksdj99sdfafnl3lk233412\r\n"
            b"Contact: sip:j.user@host.example.com\r\n"
            b"CSeq: 8 REGISTER\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492\r\n"
            b"Content-Length: 0\r\n"
            b"\r\n"
            # The REGISTER ends here; the rest is noise (Appendix A has this extra CRLF).
            b"\r\n"
            b"INVITE sip:joe@example.com SIP/2.0\r\n"
            b"t: sip:joe@example.com\r\n"
            b"From: sip:caller@example.net;tag=141334\r\n"
            b"Max-Forwards: 8\r\n"
            b"Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15\r\n"
            b"CSeq: 8 INVITE\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234\r\n"
            b"Content-Type: application/sdp\r\n"
            b"Content-Length: 150\r\n"
            b"\r\n"
            b"v=0\r\n"
            b"o=mhandley 29739 7272939 IN IP4 192.0.2.15\r\n"
            b"s=-\r\n"
            b"c=IN IP4 192.0.2.15\r\n"
            b"t=0 0\r\n"
            b"m=audio 49217 RTP/AVP 0 12\r\n"
            b"m =video 3227 RTP/AVP 31\r\n"
            b"a=rtpmap:31 LPC\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="semiuri",
        section="3.1.1.9",
        title="Semicolon-Separated Parameters in URI User Part",
        valid=True,
        expected='parse as well-formed; the Request-URI user part is "user;par=u@example.net"',
        data=(
            b"OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\r\n"
            b"To: sip:j_user@example.com\r\n"
            b"From: sip:caller@example.org;tag=33242\r\n"
            b"Max-Forwards: 3\r\n"
            b"Call-ID: semiuri.0ha0isndaksdj\r\n"
            b"CSeq: 8 OPTIONS\r\n"
            b"Accept: application/sdp, application/pkcs7-mime,\r\n"
            b"        multipart/mixed, multipart/signed,\r\n"
            b"        message/sip, message/sipfrag\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\r\n"
            b"l: 0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="transports",
        section="3.1.1.10",
        title="Varied and Unknown Transport Types",
        valid=True,
        expected=(
            "parse as well-formed; process it as if the 2nd and later Via values named a known "
            "transport"
        ),
        data=(
            b"OPTIONS sip:user@example.com SIP/2.0\r\n"
            b"To: sip:user@example.com\r\n"
            b"From: <sip:caller@example.com>;tag=323\r\n"
            b"Max-Forwards: 70\r\n"
            b"Call-ID:  transports.kijh4akdnaqjkwendsasfdj\r\n"
            b"Accept: application/sdp\r\n"
            b"CSeq: 60 OPTIONS\r\n"
            b"Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw\r\n"
            b"Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf\r\n"
            b"Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj\r\n"
            b"Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en\r\n"
            b"Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee\r\n"
            b"l: 0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="mpart01",
        section="3.1.1.11",
        title="Multipart MIME Message",
        valid=True,
        expected=(
            "parse as well-formed, framing the binary body (which contains NULs) by "
            "Content-Length, even if the body type is unsupported"
        ),
        data=(
            b"MESSAGE sip:kumiko@example.org SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.1:5070"
            b";branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport\r\n"
            b"Max-Forwards: 70\r\n"
            b"Route: <sip:127.0.0.1:5080>\r\n"
            b"Identity: r5mwreLuyDRYBi/0TiPwEsY3rEVsk/G2WxhgTV1PF7hHuL"
            b"IK0YWVKZhKv9Mj8UeXqkMVbnVq37CD+813gvYjcBUaZngQmXc9WNZSDN"
            b"GCzA+fWl9MEUHWIZo1CeJebdY/XlgKeTa0Olvq0rt70Q5jiSfbqMJmQFteeivUhkMWYUA=\r\n"
            b"Contact: <sip:fluffy@127.0.0.1:5070>\r\n"
            b"To: <sip:kumiko@example.org>\r\n"
            b"From: <sip:fluffy@example.com>;tag=2fb0dcc9\r\n"
            b"Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..\r\n"
            b"CSeq: 1 MESSAGE\r\n"
            b"Content-Transfer-Encoding: binary\r\n"
            b"Content-Type: multipart/mixed;boundary=7a9cbec02ceef655\r\n"
            b"Date: Sat, 15 Oct 2005 04:44:56 GMT\r\n"
            b"User-Agent: SIPimp.org/0.2.5 (curses)\r\n"
            b"Content-Length: 553\r\n"
            b"\r\n"
            b"--7a9cbec02ceef655\r\n"
            b"Content-Type: text/plain\r\n"
            b"Content-Transfer-Encoding: binary\r\n"
            b"\r\n"
            b"Hello\r\n"
            b"--7a9cbec02ceef655\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: binary\r\n"
            b"\r\n"
            b"\x30\x82\x01\x52\x06\x09\x2a\x86"
            b"\x48\x86\xf7\x0d\x01\x07\x02\xa0\x82\x01\x43\x30\x82\x01\x3f\x02"
            b"\x01\x01\x31\x09\x30\x07\x06\x05\x2b\x0e\x03\x02\x1a\x30\x0b\x06"
            b"\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x01\x31\x82\x01\x20\x30\x82"
            b"\x01\x1c\x02\x01\x01\x30\x7c\x30\x70\x31\x0b\x30\x09\x06\x03\x55"
            b"\x04\x06\x13\x02\x55\x53\x31\x13\x30\x11\x06\x03\x55\x04\x08\x13"
            b"\x0a\x43\x61\x6c\x69\x66\x6f\x72\x6e\x69\x61\x31\x11\x30\x0f\x06"
            b"\x03\x55\x04\x07\x13\x08\x53\x61\x6e\x20\x4a\x6f\x73\x65\x31\x0e"
            b"\x30\x0c\x06\x03\x55\x04\x0a\x13\x05\x73\x69\x70\x69\x74\x31\x29"
            b"\x30\x27\x06\x03\x55\x04\x0b\x13\x20\x53\x69\x70\x69\x74\x20\x54"
            b"\x65\x73\x74\x20\x43\x65\x72\x74\x69\x66\x69\x63\x61\x74\x65\x20"
            b"\x41\x75\x74\x68\x6f\x72\x69\x74\x79\x02\x08\x01\x95\x00\x71\x02"
            b"\x33\x01\x13\x30\x07\x06\x05\x2b\x0e\x03\x02\x1a\x30\x0d\x06\x09"
            b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00\x04\x81\x80\x8e\xf4"
            b"\x66\xf9\x48\xf0\x52\x2d\xd2\xe5\x97\x8e\x9d\x95\xaa\xe9\xf2\xfe"
            b"\x15\xa0\x66\x59\x71\x62\x92\xe8\xda\x2a\xa8\xd8\x35\x0a\x68\xce"
            b"\xff\xae\x3c\xbd\x2b\xff\x16\x75\xdd\xd5\x64\x8e\x59\x3d\xd6\x47"
            b"\x28\xf2\x62\x20\xf7\xe9\x41\x74\x9e\x33\x0d\x9a\x15\xed\xab\xdb"
            b"\x93\xd1\x0c\x42\x10\x2e\x7b\x72\x89\xd2\x9c\xc0\xc9\xae\x2e\xfb"
            b"\xc7\xc0\xcf\xf9\x17\x2f\x3b\x02\x7e\x4f\xc0\x27\xe1\x54\x6d\xe4"
            b"\xb6\xaa\x3a\xbb\x3e\x66\xcc\xcb\x5d\xd6\xc6\x4b\x83\x83\x14\x9c"
            b"\xb8\xe6\xff\x18\x2d\x94\x4f\xe5\x7b\x65\xbc\x99\xd0\x05\r\n"
            b"--7a9cbec02ceef655--\r\n"
        ),
    ),
    TortureMessage(
        name="unreason",
        section="3.1.1.12",
        title="Unusual Reason Phrase",
        valid=True,
        expected=(
            "parse as well-formed; the reason phrase holds unreserved and non-ASCII UTF-8 "
            "characters"
        ),
        data=(
            b"SIP/2.0 200 = 2**3 * 5**2 \xd0\xbd\xd0\xbe\x20\xd1\x81\xd1\x82"
            b"\xd0\xbe\x20\xd0\xb4\xd0\xb5\xd0\xb2\xd1\x8f\xd0\xbd\xd0\xbe\xd1\x81\xd1\x82\xd0"
            b"\xbe\x20\xd0\xb4"
            b"\xd0\xb5\xd0\xb2\xd1\x8f\xd1\x82\xd1\x8c\x20\x2d\x20\xd0\xbf\xd1\x80\xd0\xbe\xd1"
            b"\x81\xd1\x82\xd0\xbe\xd0\xb5\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\r\n"
            b"Call-ID: unreason.1234ksdfak3j2erwedfsASdf\r\n"
            b"CSeq: 35 INVITE\r\n"
            b"From: sip:user@example.com;tag=11141343\r\n"
            b"To: sip:user@example.edu;tag=2229\r\n"
            b"Content-Length: 154\r\n"
            b"Content-Type: application/sdp\r\n"
            b"Contact: <sip:user@host198.example.com>\r\n"
            b"\r\n"
            b"v=0\r\n"
            b"o=mhandley 29739 7272939 IN IP4 192.0.2.198\r\n"
            b"s=-\r\n"
            b"c=IN IP4 192.0.2.198\r\n"
            b"t=0 0\r\n"
            b"m=audio 49217 RTP/AVP 0 12\r\n"
            b"m=video 3227 RTP/AVP 31\r\n"
            b"a=rtpmap:31 LPC\r\n"
        ),
    ),
    TortureMessage(
        name="noreason",
        section="3.1.1.13",
        title="Empty Reason Phrase",
        valid=True,
        expected=(
            "parse as well-formed; the reason phrase is empty but the SP after the status code is "
            "present"
        ),
        data=(
            b"SIP/2.0 100\x20\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\n"
            b"Call-ID: noreason.asndj203insdf99223ndf\r\n"
            b"CSeq: 35 INVITE\r\n"
            b"From: <sip:user@example.com>;tag=39ansfi3\r\n"
            b"To: <sip:user@example.edu>;tag=902jndnke3\r\n"
            b"Content-Length: 0\r\n"
            b"Contact: <sip:user@host105.example.com>\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="badinv01",
        section="3.1.2.1",
        title="Extraneous Header Field Separators",
        valid=False,
        expected="respond 400 Bad Request",
        data=(
            b"INVITE sip:user@example.com SIP/2.0\r\n"
            b"To: sip:j.user@example.com\r\n"
            b"From: sip:caller@example.net;tag=134161461246\r\n"
            b"Max-Forwards: 7\r\n"
            b"Call-ID: badinv01.0ha0isndaksdjasdf3234nas\r\n"
            b"CSeq: 8 INVITE\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.15;;,;,,\r\n"
            b'Contact: "Joe" <sip:joe@example.org>;;;;\r\n'
            b"Content-Length: 152\r\n"
            b"Content-Type: application/sdp\r\n"
            b"\r\n"
            b"v=0\r\n"
            b"o=mhandley 29739 7272939 IN IP4 192.0.2.15\r\n"
            b"s=-\r\n"
            b"c=IN IP4 192.0.2.15\r\n"
            b"t=0 0\r\n"
            b"m=audio 49217 RTP/AVP 0 12\r\n"
            b"m=video 3227 RTP/AVP 31\r\n"
            b"a=rtpmap:31 LPC\r\n"
        ),
    ),
    TortureMessage(
        name="clerr",
        section="3.1.2.2",
        title="Content Length Larger Than Message",
        valid=False,
        expected=(
            "over UDP respond 400 Bad Request (Content-Length larger than the body); over TCP wait"
            " for more data and close the connection if none comes"
        ),
        data=(
            b"INVITE sip:user@example.com SIP/2.0\r\n"
            b"Max-Forwards: 80\r\n"
            b"To: sip:j.user@example.com\r\n"
            b"From: sip:caller@example.net;tag=93942939o2\r\n"
            b"Contact: <sip:caller@hungry.example.net>\r\n"
            b"Call-ID: clerr.0ha0isndaksdjweiafasdk3\r\n"
            b"CSeq: 8 INVITE\r\n"
            b"Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523\r\n"
            b"Content-Type: application/sdp\r\n"
            b"Content-Length: 9999\r\n"
            b"\r\n"
            b"v=0\r\n"
            b"o=mhandley 29739 7272939 IN IP4 192.0.2.155\r\n"
            b"s=-\r\n"
            b"c=IN IP4 192.0.2.155\r\n"
            b"t=0 0\r\n"
            b"m=audio 49217 RTP/AVP 0 12\r\n"
            b"m=video 3227 RTP/AVP 31\r\n"
            b"a=rtpmap:31 LPC\r\n"
        ),
    ),
    TortureMessage(
        name="ncl",
        section="3.1.2.3",
        title="Negative Content-Length",
        valid=False,
        expected=(
            "respond with an error and discard the rest of the datagram (over TCP, close the "
            "connection); never use the value as a counter or index"
        ),
        data=(
            b"INVITE sip:user@example.com SIP/2.0\r\n"
            b"Max-Forwards: 254\r\n"
            b"To: sip:j.user@example.com\r\n"
            b"From: sip:caller@example.net;tag=32394234\r\n"
            b"Call-ID: ncl.0ha0isndaksdj2193423r542w35\r\n"
            b"CSeq: 0 INVITE\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw\r\n"
            b"Contact: <sip:caller@example53.example.net>\r\n"
            b"Content-Type: application/sdp\r\n"
            b"Content-Length: -999\r\n"
            b"\r\n"
            b"v=0\r\n"
            b"o=mhandley 29739 7272939 IN IP4 192.0.2.53\r\n"
            b"s=-\r\n"
            b"c=IN IP4 192.0.2.53\r\n"
            b"t=0 0\r\n"
            b"m=audio 49217 RTP/AVP 0 12\r\n"
            b"m=video 3227 RTP/AVP 31\r\n"
            b"a=rtpmap:31 LPC\r\n"
        ),
    ),
    TortureMessage(
        name="scalar02",
        section="3.1.2.4",
        title="Request Scalar Fields with Overlarge Values",
        valid=False,
        expected="respond 400 Bad Request because the CSeq sequence number exceeds 2**32-1",
        data=(
            b"REGISTER sip:example.com SIP/2.0\r\n"
            b"Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\r\n"
            b"To: <sip:user@example.com>\r\n"
            b"From: <sip:user@example.com>;tag=239232jh3\r\n"
            b"CSeq: 36893488147419103232 REGISTER\r\n"
            b"Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32\r\n"
            b"Max-Forwards: 300\r\n"
            b"Expires: 1" + (b"0" * 100) + b"\r\n"
            b"Contact: <sip:user@host129.example.com>\r\n"
            b"  ;expires=280297596632815\r\n"
            b"Content-Length: 0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="scalarlg",
        section="3.1.2.5",
        title="Response Scalar Fields with Overlarge Values",
        valid=False,
        expected="discard the response",
        data=(
            b"SIP/2.0 503 Service Unavailable\r\n"
            b"Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw"
            b";received=192.0.2.129\r\n"
            b"To: <sip:user@example.com>\r\n"
            b"From: <sip:other@example.net>;tag=2easdjfejw\r\n"
            b"CSeq: 9292394834772304023312 OPTIONS\r\n"
            b"Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r\r\n"
            b"Retry-After: 949302838503028349304023988\r\n"
            b'Warning: 1812 overture "In Progress"\r\n'
            b"Content-Length: 0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="quotbal",
        section="3.1.2.6",
        title="Unterminated Quoted String in Display Name",
        valid=False,
        expected="respond 400 Bad Request (or, carefully, infer the missing closing quote)",
        data=(
            b"INVITE sip:user@example.com SIP/2.0\r\n"
            b'To: "Mr. J. User <sip:j.user@example.com>\r\n'
            b"From: sip:caller@example.net;tag=93334\r\n"
            b"Max-Forwards: 10\r\n"
            b"Call-ID: quotbal.aksdj\r\n"
            b"Contact: <sip:caller@host59.example.net>\r\n"
            b"CSeq: 8 INVITE\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234\r\n"
            b"Content-Type: application/sdp\r\n"
            b"Content-Length: 152\r\n"
            b"\r\n"
            b"v=0\r\n"
            b"o=mhandley 29739 7272939 IN IP4 192.0.2.15\r\n"
            b"s=-\r\n"
            b"c=IN IP4 192.0.2.15\r\n"
            b"t=0 0\r\n"
            b"m=audio 49217 RTP/AVP 0 12\r\n"
            b"m=video 3227 RTP/AVP 31\r\n"
            b"a=rtpmap:31 LPC\r\n"
        ),
    ),
    TortureMessage(
        name="ltgtruri",
        section="3.1.2.7",
        title="<> Enclosing Request-URI",
        valid=False,
        expected=(
            "respond 400 Bad Request (a liberal element may ignore the brackets but must not "
            "forward them)"
        ),
        data=(
            b"INVITE <sip:user@example.com> SIP/2.0\r\n"
            b"To: sip:user@example.com\r\n"
            b"From: sip:caller@example.net;tag=39291\r\n"
            b"Max-Forwards: 23\r\n"
            b"Call-ID: ltgtruri.1@192.0.2.5\r\n"
            b"CSeq: 1 INVITE\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.5\r\n"
            b"Contact: <sip:caller@host5.example.net>\r\n"
            b"Content-Type: application/sdp\r\n"
            b"Content-Length: 159\r\n"
            b"\r\n"
            b"v=0\r\n"
            b"o=mhandley 29739 7272939 IN IP4 192.0.2.5\r\n"
            b"s=-\r\n"
            b"c=IN IP4 192.0.2.5\r\n"
            b"t=3149328700 0\r\n"
            b"m=audio 49217 RTP/AVP 0 12\r\n"
            b"m=video 3227 RTP/AVP 31\r\n"
            b"a=rtpmap:31 LPC\r\n"
        ),
    ),
    TortureMessage(
        name="lwsruri",
        section="3.1.2.8",
        title="Malformed SIP Request-URI (embedded LWS)",
        valid=False,
        expected=(
            "respond 400 Bad Request (a liberal element may ignore the LWS where that is "
            "unambiguous)"
        ),
        data=(
            b"INVITE sip:user@example.com; lr SIP/2.0\r\n"
            b"To: sip:user@example.com;tag=3xfe-9921883-z9f\r\n"
            b"From: sip:caller@example.net;tag=231413434\r\n"
            b"Max-Forwards: 5\r\n"
            b"Call-ID: lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423\r\n"
            b"CSeq: 2130706432 INVITE\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKkdjuw2395\r\n"
            b"Contact: <sip:caller@host1.example.net>\r\n"
            b"Content-Type: application/sdp\r\n"
            b"Content-Length: 159\r\n"
            b"\r\n"
            b"v=0\r\n"
            b"o=mhandley 29739 7272939 IN IP4 192.0.2.1\r\n"
            b"s=-\r\n"
            b"c=IN IP4 192.0.2.1\r\n"
            b"t=3149328700 0\r\n"
            b"m=audio 49217 RTP/AVP 0 12\r\n"
            b"m=video 3227 RTP/AVP 31\r\n"
            b"a=rtpmap:31 LPC\r\n"
        ),
    ),
    TortureMessage(
        name="lwsstart",
        section="3.1.2.9",
        title="Multiple SP Separating Request-Line Elements",
        valid=False,
        expected=(
            "may reject as malformed; a liberal element may ignore the extra SP characters but "
            "must not forward them"
        ),
        data=(
            b"INVITE  sip:user@example.com  SIP/2.0\r\n"
            b"Max-Forwards: 8\r\n"
            b"To: sip:user@example.com\r\n"
            b"From: sip:caller@example.net;tag=8814\r\n"
            b"Call-ID: lwsstart.dfknq234oi243099adsdfnawe3@example.com\r\n"
            b"CSeq: 1893884 INVITE\r\n"
            b"Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw3923\r\n"
            b"Contact: <sip:caller@host1.example.net>\r\n"
            b"Content-Type: application/sdp\r\n"
            b"Content-Length: 150\r\n"
            b"\r\n"
            b"v=0\r\n"
            b"o=mhandley 29739 7272939 IN IP4 192.0.2.1\r\n"
            b"s=-\r\n"
            b"c=IN IP4 192.0.2.1\r\n"
            b"t=0 0\r\n"
            b"m=audio 49217 RTP/AVP 0 12\r\n"
            b"m=video 3227 RTP/AVP 31\r\n"
            b"a=rtpmap:31 LPC\r\n"
        ),
    ),
    TortureMessage(
        name="trws",
        section="3.1.2.10",
        title="SP Characters at End of Request-Line",
        valid=False,
        expected=(
            "may reject as malformed; a liberal element may ignore the trailing SP characters but "
            "must not forward them"
        ),
        data=(
            b"OPTIONS sip:remote-target@example.com SIP/2.0\x20\x20\r\n"
            # "examle" (sic) as in Appendix A; the §3 text shows "example".
            b"Via: SIP/2.0/TCP host1.examle.com;branch=z9hG4bK299342093\r\n"
            b"To: <sip:remote-target@example.com>\r\n"
            b"From: <sip:local-resource@example.com>;tag=329429089\r\n"
            b"Call-ID: trws.oicu34958239neffasdhr2345r\r\n"
            b"Accept: application/sdp\r\n"
            b"CSeq: 238923 OPTIONS\r\n"
            b"Max-Forwards: 70\r\n"
            b"Content-Length: 0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="escruri",
        section="3.1.2.11",
        title="Escaped Headers in SIP Request-URI",
        valid=False,
        expected=(
            "may respond 400 Bad Request; a liberal element ignores the escaped headers and a "
            "proxy must not forward them"
        ),
        data=(
            b"INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0\r\n"
            b"To: sip:user@example.com\r\n"
            b"From: sip:caller@example.net;tag=341518\r\n"
            b"Max-Forwards: 7\r\n"
            b"Contact: <sip:caller@host39923.example.net>\r\n"
            b"Call-ID: escruri.23940-asdfhj-aje3br-234q098w-fawerh2q-h4n5\r\n"
            b"CSeq: 149209342 INVITE\r\n"
            b"Via: SIP/2.0/UDP host-of-the-hour.example.com;branch=z9hG4bKkdjuw\r\n"
            b"Content-Type: application/sdp\r\n"
            b"Content-Length: 150\r\n"
            b"\r\n"
            b"v=0\r\n"
            b"o=mhandley 29739 7272939 IN IP4 192.0.2.1\r\n"
            b"s=-\r\n"
            b"c=IN IP4 192.0.2.1\r\n"
            b"t=0 0\r\n"
            b"m=audio 49217 RTP/AVP 0 12\r\n"
            b"m=video 3227 RTP/AVP 31\r\n"
            b"a=rtpmap:31 LPC\r\n"
        ),
    ),
    TortureMessage(
        name="baddate",
        section="3.1.2.12",
        title="Invalid Time Zone in Date Header Field",
        valid=False,
        expected=(
            "may reject as malformed only if the Date matters to processing; otherwise ignore the "
            "Date value or convert it to GMT"
        ),
        data=(
            b"INVITE sip:user@example.com SIP/2.0\r\n"
            b"To: sip:user@example.com\r\n"
            b"From: sip:caller@example.net;tag=2234923\r\n"
            b"Max-Forwards: 70\r\n"
            b"Call-ID: baddate.239423mnsadf3j23lj42--sedfnm234\r\n"
            b"CSeq: 1392934 INVITE\r\n"
            b"Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\r\n"
            b"Date: Fri, 01 Jan 2010 16:00:00 EST\r\n"
            b"Contact: <sip:caller@host5.example.net>\r\n"
            b"Content-Type: application/sdp\r\n"
            b"Content-Length: 150\r\n"
            b"\r\n"
            b"v=0\r\n"
            b"o=mhandley 29739 7272939 IN IP4 192.0.2.5\r\n"
            b"s=-\r\n"
            b"c=IN IP4 192.0.2.5\r\n"
            b"t=0 0\r\n"
            b"m=audio 49217 RTP/AVP 0 12\r\n"
            b"m=video 3227 RTP/AVP 31\r\n"
            b"a=rtpmap:31 LPC\r\n"
        ),
    ),
    TortureMessage(
        name="regbadct",
        section="3.1.2.13",
        title="Failure to Enclose name-addr URI in <>",
        valid=False,
        expected="respond 400 Bad Request (a liberal element may infer the angle brackets here)",
        data=(
            b"REGISTER sip:example.com SIP/2.0\r\n"
            b"To: sip:user@example.com\r\n"
            b"From: sip:user@example.com;tag=998332\r\n"
            b"Max-Forwards: 70\r\n"
            b"Call-ID: regbadct.k345asrl3fdbv@10.0.0.1\r\n"
            b"CSeq: 1 REGISTER\r\n"
            b"Via: SIP/2.0/UDP 135.180.130.133:5060;branch=z9hG4bKkdjuw\r\n"
            b"Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E\r\n"
            b"l: 0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="badaspec",
        section="3.1.2.14",
        title="Spaces within addr-spec",
        valid=False,
        expected="do not break; respond 400 Bad Request (a liberal element may ignore the spaces)",
        data=(
            b"OPTIONS sip:user@example.org SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234\r\n"
            b"Max-Forwards: 70\r\n"
            b'From: "Bell, Alexander" <sip:a.g.bell@example.com>;tag=433423\r\n'
            b'To: "Watson, Thomas" < sip:t.watson@example.org >\r\n'
            b"Call-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3\r\n"
            b"Accept: application/sdp\r\n"
            b"CSeq: 3923239 OPTIONS\r\n"
            b"l: 0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="baddn",
        section="3.1.2.15",
        title="Non-token Characters in Display Name",
        valid=False,
        expected=(
            "respond 400 Bad Request (a liberal element may infer the quotes; a proxy must not "
            "forward the error)"
        ),
        data=(
            b"OPTIONS sip:t.watson@example.org SIP/2.0\r\n"
            b"Via:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw\r\n"
            b"Max-Forwards:      70\r\n"
            b"From:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43\r\n"
            b"To:      Watson, Thomas <sip:t.watson@example.org>\r\n"
            b"Call-ID: baddn.31415@c.example.com\r\n"
            b"Accept: application/sdp\r\n"
            b"CSeq:    3923239 OPTIONS\r\n"
            b"l: 0\r\n"
            # Appendix A has no empty line ending the header section here.
        ),
    ),
    TortureMessage(
        name="badvers",
        section="3.1.2.16",
        title="Unknown Protocol Version",
        valid=False,
        expected="respond 505 Version Not Supported",
        data=(
            b"OPTIONS sip:t.watson@example.org SIP/7.0\r\n"
            b"Via:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw\r\n"
            b"Max-Forwards:     70\r\n"
            b"From:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe\r\n"
            b"To:      T. Watson <sip:t.watson@example.org>\r\n"
            b"Call-ID: badvers.31417@c.example.com\r\n"
            b"CSeq:    1 OPTIONS\r\n"
            b"l: 0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="mismatch01",
        section="3.1.2.17",
        title="Start Line and CSeq Method Mismatch",
        valid=False,
        expected="respond 400 Bad Request",
        data=(
            b"OPTIONS sip:user@example.com SIP/2.0\r\n"
            b"To: sip:j.user@example.com\r\n"
            b"From: sip:caller@example.net;tag=34525\r\n"
            b"Max-Forwards: 6\r\n"
            b"Call-ID: mismatch01.dj0234sxdfl3\r\n"
            b"CSeq: 8 INVITE\r\n"
            b"Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\r\n"
            b"l: 0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="mismatch02",
        section="3.1.2.18",
        title="Unknown Method with CSeq Method Mismatch",
        valid=False,
        expected="respond 501 Not Implemented (400 Bad Request is also acceptable)",
        data=(
            b"NEWMETHOD sip:user@example.com SIP/2.0\r\n"
            b"To: sip:j.user@example.com\r\n"
            b"From: sip:caller@example.net;tag=34525\r\n"
            b"Max-Forwards: 6\r\n"
            b"Call-ID: mismatch02.dj0234sxdfl3\r\n"
            b"CSeq: 8 INVITE\r\n"
            b"Contact: <sip:caller@host.example.net>\r\n"
            b"Via: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw\r\n"
            b"Content-Type: application/sdp\r\n"
            b"l: 138\r\n"
            b"\r\n"
            b"v=0\r\n"
            b"o=mhandley 29739 7272939 IN IP4 192.0.2.1\r\n"
            b"c=IN IP4 192.0.2.1\r\n"
            b"m=audio 49217 RTP/AVP 0 12\r\n"
            b"m=video 3227 RTP/AVP 31\r\n"
            b"a=rtpmap:31 LPC\r\n"
        ),
    ),
    TortureMessage(
        name="bigcode",
        section="3.1.2.19",
        title="Overlarge Response Code",
        valid=False,
        expected="drop the response",
        data=(
            b"SIP/2.0 4294967301 better not break the receiver\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\n"
            b"Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i\r\n"
            b"CSeq: 353494 INVITE\r\n"
            b"From: <sip:user@example.com>;tag=39ansfi3\r\n"
            b"To: <sip:user@example.edu>;tag=902jndnke3\r\n"
            b"Content-Length: 0\r\n"
            b"Contact: <sip:user@host105.example.com>\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="badbranch",
        section="3.2.1",
        title="Missing Transaction Identifier",
        valid=True,
        expected=(
            "do not break; respond 400 (preferably statelessly) or fall back to RFC 2543-style "
            "transaction matching"
        ),
        data=(
            b"OPTIONS sip:user@example.com SIP/2.0\r\n"
            b"To: sip:user@example.com\r\n"
            b"From: sip:caller@example.org;tag=33242\r\n"
            b"Max-Forwards: 3\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK\r\n"
            b"Accept: application/sdp\r\n"
            b"Call-ID: badbranch.sadonfo23i420jv0as0derf3j3n\r\n"
            b"CSeq: 8 OPTIONS\r\n"
            b"l: 0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="insuf",
        section="3.3.1",
        title="Missing Required Header Fields",
        valid=True,
        expected=(
            "do not break on the missing Call-ID, From and To; ideally respond 400 Bad Request"
        ),
        data=(
            b"INVITE sip:user@example.com SIP/2.0\r\n"
            b"CSeq: 193942 INVITE\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf\r\n"
            b"Content-Type: application/sdp\r\n"
            b"l: 152\r\n"
            b"\r\n"
            b"v=0\r\n"
            b"o=mhandley 29739 7272939 IN IP4 192.0.2.95\r\n"
            b"s=-\r\n"
            b"c=IN IP4 192.0.2.95\r\n"
            b"t=0 0\r\n"
            b"m=audio 49217 RTP/AVP 0 12\r\n"
            b"m=video 3227 RTP/AVP 31\r\n"
            b"a=rtpmap:31 LPC\r\n"
        ),
    ),
    TortureMessage(
        name="unkscm",
        section="3.3.2",
        title="Request-URI with Unknown Scheme",
        valid=True,
        expected=(
            "parse as well-formed; respond 416 Unsupported URI Scheme (never route on the To "
            "header field)"
        ),
        data=(
            b"OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0\r\n"
            b"To: sip:user@example.com\r\n"
            b"From: sip:caller@example.net;tag=384\r\n"
            b"Max-Forwards: 3\r\n"
            b"Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34\r\n"
            b"CSeq: 3923423 OPTIONS\r\n"
            b"Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234\r\n"
            b"Content-Length: 0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="novelsc",
        section="3.3.3",
        title="Request-URI with Known but Atypical Scheme",
        valid=True,
        expected=(
            "parse as well-formed; respond 416 Unsupported URI Scheme, or 404 Not Found if the "
            "scheme is sometimes accepted"
        ),
        data=(
            b"OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0\r\n"
            b"To: sip:user@example.com\r\n"
            b"From: sip:caller@example.net;tag=384\r\n"
            b"Max-Forwards: 3\r\n"
            b"Call-ID: novelsc.asdfasser0q239nwsdfasdkl34\r\n"
            b"CSeq: 3923423 OPTIONS\r\n"
            b"Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234\r\n"
            b"Content-Length: 0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="unksm2",
        section="3.3.4",
        title="Unknown URI Schemes in Header Fields",
        valid=True,
        expected=(
            "parse as well-formed; a registrar responds 400 Bad Request (a proxy treats it like "
            "any other request)"
        ),
        data=(
            b"REGISTER sip:example.com SIP/2.0\r\n"
            b"To: isbn:2983792873\r\n"
            b"From: <http://www.example.com>;tag=3234233\r\n"
            b"Call-ID: unksm2.daksdj@hyphenated-host.example.com\r\n"
            b"CSeq: 234902 REGISTER\r\n"
            b"Max-Forwards: 70\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw\r\n"
            b"Contact: <name:John_Smith>\r\n"
            b"l: 0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="bext01",
        section="3.3.5",
        title="Proxy-Require and Require",
        valid=True,
        expected=(
            "respond 420 Bad Extension with an Unsupported header field listing the Require (UAS) "
            "or Proxy-Require (proxy) features"
        ),
        data=(
            b"OPTIONS sip:user@example.com SIP/2.0\r\n"
            b"To: sip:j_user@example.com\r\n"
            b"From: sip:caller@example.net;tag=242etr\r\n"
            b"Max-Forwards: 6\r\n"
            b"Call-ID: bext01.0ha0isndaksdj\r\n"
            b"Require: nothingSupportsThis, nothingSupportsThisEither\r\n"
            b"Proxy-Require: noProxiesSupportThis, norDoAnyProxiesSupportThis\r\n"
            b"CSeq: 8 OPTIONS\r\n"
            b"Via: SIP/2.0/TLS fold-and-staple.example.com;branch=z9hG4bKkdjuw\r\n"
            b"Content-Length: 0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="invut",
        section="3.3.6",
        title="Unknown Content-Type",
        valid=True,
        expected=(
            "parse as well-formed; an endpoint responds 415 Unsupported Media Type (a proxy "
            "forwards it)"
        ),
        data=(
            b"INVITE sip:user@example.com SIP/2.0\r\n"
            b"Contact: <sip:caller@host5.example.net>\r\n"
            b"To: sip:j.user@example.com\r\n"
            b"From: sip:caller@example.net;tag=8392034\r\n"
            b"Max-Forwards: 70\r\n"
            b"Call-ID: invut.0ha0isndaksdjadsfij34n23d\r\n"
            b"CSeq: 235448 INVITE\r\n"
            b"Via: SIP/2.0/UDP somehost.example.com;branch=z9hG4bKkdjuw\r\n"
            b"Content-Type: application/unknownformat\r\n"
            b"Content-Length: 40\r\n"
            b"\r\n"
            b"<audio>\r\n"
            b' <pcmu port="443"/>\r\n'
            b"</audio>\r\n"
        ),
    ),
    TortureMessage(
        name="regaut01",
        section="3.3.7",
        title="Unknown Authorization Scheme",
        valid=True,
        expected=(
            "parse as well-formed; a registrar ignores the Authorization or responds 401 with a "
            "known scheme, other endpoints respond 405"
        ),
        data=(
            b"REGISTER sip:example.com SIP/2.0\r\n"
            b"To: sip:j.user@example.com\r\n"
            b"From: sip:j.user@example.com;tag=87321hj23128\r\n"
            b"Max-Forwards: 8\r\n"
            b"Call-ID: regaut01.0ha0isndaksdj\r\n"
            b"CSeq: 9338 REGISTER\r\n"
            b"Via: SIP/2.0/TCP 192.0.2.253;branch=z9hG4bKkdjuw\r\n"
            b"Authorization: NoOneKnowsThisScheme opaque-data=here\r\n"
            b"Content-Length:0\r\n"
            b"\r\n"
        ),
    ),
    # §3.3.8 and §3.3.9: RFC 3261 §7.3.1 allows a single header field row for To, From,
    # Call-ID, CSeq, Max-Forwards and Content-Length, so these two messages are not
    # syntactically valid; RFC 4475 asks for an error response to both.
    TortureMessage(
        name="multi01",
        section="3.3.8",
        title="Multiple Values in Single Value Required Fields",
        valid=False,
        expected="do not break; respond 400 Bad Request",
        data=(
            b"INVITE sip:user@company.com SIP/2.0\r\n"
            b"Contact: <sip:caller@host25.example.net>\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw\r\n"
            b"Max-Forwards: 70\r\n"
            b"CSeq: 5 INVITE\r\n"
            b"Call-ID: multi01.98asdh@192.0.2.1\r\n"
            b"CSeq: 59 INVITE\r\n"
            b"Call-ID: multi01.98asdh@192.0.2.2\r\n"
            b"From: sip:caller@example.com;tag=3413415\r\n"
            b"To: sip:user@example.com\r\n"
            b"To: sip:other@example.net\r\n"
            b"From: sip:caller@example.net;tag=2923420123\r\n"
            b"Content-Type: application/sdp\r\n"
            b"l: 154\r\n"
            b"Contact: <sip:caller@host36.example.net>\r\n"
            b"Max-Forwards: 5\r\n"
            b"\r\n"
            b"v=0\r\n"
            b"o=mhandley 29739 7272939 IN IP4 192.0.2.25\r\n"
            b"s=-\r\n"
            b"c=IN IP4 192.0.2.25\r\n"
            b"t=0 0\r\n"
            b"m=audio 49217 RTP/AVP 0 12\r\n"
            b"m=video 3227 RTP/AVP 31\r\n"
            b"a=rtpmap:31 LPC\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="mcl01",
        section="3.3.9",
        title="Multiple Content-Length Values",
        valid=False,
        expected=(
            "respond with an error and discard the rest of the datagram (over TCP, close the "
            "connection): the framing is unknown"
        ),
        data=(
            b"OPTIONS sip:user@example.com SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK293423\r\n"
            b"To: sip:user@example.com\r\n"
            b"From: sip:other@example.net;tag=3923942\r\n"
            b"Call-ID: mcl01.fhn2323orihawfdoa3o4r52o3irsdf\r\n"
            b"CSeq: 15932 OPTIONS\r\n"
            b"Content-Length: 13\r\n"
            b"Max-Forwards: 60\r\n"
            b"Content-Length: 5\r\n"
            b"Content-Type: text/plain\r\n"
            b"\r\n"
            b"There's no way to know how many octets are supposed to be here.\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="bcast",
        section="3.3.10",
        title="200 OK Response with Broadcast Via Header Field Value",
        valid=True,
        expected=(
            "parse as well-formed; an endpoint discards it and a proxy drops it instead of "
            "forwarding to 255.255.255.255"
        ),
        data=(
            b"SIP/2.0 200 OK\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\r\n"
            b"Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23\r\n"
            b"Call-ID: bcast.0384840201234ksdfak3j2erwedfsASdf\r\n"
            b"CSeq: 35 INVITE\r\n"
            b"From: sip:user@example.com;tag=11141343\r\n"
            b"To: sip:user@example.edu;tag=2229\r\n"
            b"Content-Length: 154\r\n"
            b"Content-Type: application/sdp\r\n"
            b"Contact: <sip:user@host28.example.com>\r\n"
            b"\r\n"
            b"v=0\r\n"
            b"o=mhandley 29739 7272939 IN IP4 192.0.2.198\r\n"
            b"s=-\r\n"
            b"c=IN IP4 192.0.2.198\r\n"
            b"t=0 0\r\n"
            b"m=audio 49217 RTP/AVP 0 12\r\n"
            b"m=video 3227 RTP/AVP 31\r\n"
            b"a=rtpmap:31 LPC\r\n"
        ),
    ),
    TortureMessage(
        name="zeromf",
        section="3.3.11",
        title="Max-Forwards of Zero",
        valid=True,
        expected=(
            "an endpoint processes it as if Max-Forwards were positive; a proxy responds 483 Too "
            "Many Hops"
        ),
        data=(
            b"OPTIONS sip:user@example.com SIP/2.0\r\n"
            b"To: sip:user@example.com\r\n"
            b"From: sip:caller@example.net;tag=3ghsd41\r\n"
            b"Call-ID: zeromf.jfasdlfnm2o2l43r5u0asdfas\r\n"
            b"CSeq: 39234321 OPTIONS\r\n"
            b"Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw2349i\r\n"
            b"Max-Forwards: 0\r\n"
            b"Content-Length: 0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="cparam01",
        section="3.3.12",
        title="REGISTER with a Contact Header Parameter",
        valid=True,
        expected=(
            "register successfully; unknownparam is a contact-param and never appears as a "
            "url-parameter of the binding"
        ),
        data=(
            b"REGISTER sip:example.com SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw\r\n"
            b"Max-Forwards: 70\r\n"
            b"From: sip:watson@example.com;tag=DkfVgjkrtMwaerKKpe\r\n"
            b"To: sip:watson@example.com\r\n"
            b"Call-ID: cparam01.70710@saturn.example.com\r\n"
            b"CSeq: 2 REGISTER\r\n"
            b"Contact: sip:+19725552222@gw1.example.net;unknownparam\r\n"
            b"l: 0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="cparam02",
        section="3.3.13",
        title="REGISTER with a url-parameter",
        valid=True,
        expected=(
            "register successfully; later fetches of the binding include unknownparam as a "
            "url-parameter"
        ),
        data=(
            b"REGISTER sip:example.com SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw\r\n"
            b"Max-Forwards: 70\r\n"
            b"From: sip:watson@example.com;tag=838293\r\n"
            b"To: sip:watson@example.com\r\n"
            b"Call-ID: cparam02.70710@saturn.example.com\r\n"
            b"CSeq: 3 REGISTER\r\n"
            b"Contact: <sip:+19725552222@gw1.example.net;unknownparam>\r\n"
            b"l: 0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="regescrt",
        section="3.3.14",
        title="REGISTER with a URL Escaped Header",
        valid=True,
        expected=(
            "register successfully; later fetches keep the escaped Route header in the contact URI"
        ),
        data=(
            b"REGISTER sip:example.com SIP/2.0\r\n"
            b"To: sip:user@example.com\r\n"
            b"From: sip:user@example.com;tag=8\r\n"
            b"Max-Forwards: 70\r\n"
            b"Call-ID: regescrt.k345asrl3fdbv@192.0.2.1\r\n"
            b"CSeq: 14398234 REGISTER\r\n"
            b"Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\r\n"
            b"M: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>\r\n"
            b"L:0\r\n"
            b"\r\n"
        ),
    ),
    TortureMessage(
        name="sdp01",
        section="3.3.15",
        title="Unacceptable Accept Offering",
        valid=True,
        expected="respond 406 Not Acceptable with a Warning 399, or 400 Bad Request",
        data=(
            b"INVITE sip:user@example.com SIP/2.0\r\n"
            b"To: sip:j_user@example.com\r\n"
            b"Contact: <sip:caller@host15.example.net>\r\n"
            b"From: sip:caller@example.net;tag=234\r\n"
            b"Max-Forwards: 5\r\n"
            b"Call-ID: sdp01.ndaksdj9342dasdd\r\n"
            b"Accept: text/nobodyKnowsThis\r\n"
            b"CSeq: 8 INVITE\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw\r\n"
            b"Content-Length: 150\r\n"
            b"Content-Type: application/sdp\r\n"
            b"\r\n"
            b"v=0\r\n"
            b"o=mhandley 29739 7272939 IN IP4 192.0.2.5\r\n"
            b"s=-\r\n"
            b"c=IN IP4 192.0.2.5\r\n"
            b"t=0 0\r\n"
            b"m=audio 49217 RTP/AVP 0 12\r\n"
            b"m=video 3227 RTP/AVP 31\r\n"
            b"a=rtpmap:31 LPC\r\n"
        ),
    ),
    TortureMessage(
        name="inv2543",
        section="3.4.1",
        title="INVITE with RFC 2543 Syntax",
        valid=True,
        expected=(
            "accept for backward compatibility; with no Content-Length the body is every octet "
            "after the empty line"
        ),
        data=(
            b"INVITE sip:UserB@example.com SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP iftgw.example.com\r\n"
            b"From: <sip:+13035551111@ift.client.example.net;user=phone>\r\n"
            b"Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>\r\n"
            b"To: sip:+16505552222@ss1.example.net;user=phone\r\n"
            b"Call-ID: inv2543.1717@ift.client.example.com\r\n"
            b"CSeq: 56 INVITE\r\n"
            b"Content-Type: application/sdp\r\n"
            b"\r\n"
            b"v=0\r\n"
            b"o=mhandley 29739 7272939 IN IP4 192.0.2.5\r\n"
            b"s=-\r\n"
            b"c=IN IP4 192.0.2.5\r\n"
            b"t=0 0\r\n"
            b"m=audio 49217 RTP/AVP 0\r\n"
        ),
    ),
)
