"""What `preflight` and `sweep` share about AWS: bounded clients, region checks, and what an error means.

Every client is built with explicit timeouts and botocore's "standard" retry mode (which retries throttling and
5xx answers a few times with backoff), so a black-holed endpoint fails in seconds and a flaky one is retried
before anyone is told a check failed.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Optional

from burstctl.output import BadInput

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 20.0
MAX_ATTEMPTS = 3

_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d+$")

# Error codes that mean "this identity may not do that" (IAM / SCP / permission boundary), as opposed to a
# throttled, failing or unreachable service.
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException",
           "AuthorizationError", "NotAuthorized"}
_BAD_CREDENTIALS = {"AuthFailure", "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
                    "ExpiredToken", "ExpiredTokenException", "InvalidAccessKeyId", "RequestExpired"}


@functools.cache
def known_regions() -> tuple[str, ...]:
    """Regions the installed botocore knows for EC2, across partitions (aws, aws-cn, aws-us-gov, ...)."""
    import botocore.session

    session = botocore.session.get_session()
    out: set[str] = set()
    for partition in session.get_available_partitions():
        out.update(session.get_available_regions("ec2", partition_name=partition))
    return tuple(sorted(out))


def check_region(region: str, flag: str = "--region") -> str:
    """Reject what is not an AWS region before any call is made (an unknown region otherwise shows up as a DNS
    failure or a hang on `ec2.<region>.amazonaws.com`)."""
    region = (region or "").strip()
    known = known_regions()
    if region in known:
        return region
    shape = "" if _REGION.match(region) else " (regions look like us-west-2, eu-central-1)"
    near = [r for r in known if r.split("-")[0] == region.split("-")[0]][:8] or known[:8]
    raise BadInput(f"{flag}: '{region}' is not an AWS region{shape}; e.g. {', '.join(near)}")


def client_config(timeout: Optional[float] = None) -> Any:
    from botocore.config import Config

    read = READ_TIMEOUT_S if timeout is None else timeout
    return Config(connect_timeout=min(CONNECT_TIMEOUT_S, read), read_timeout=read,
                  retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"})


def session(region: str, profile: Optional[str]) -> Any:
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        return boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound:
        raise BadInput(f"--profile: AWS profile '{profile}' not found in ~/.aws/config") from None


def error_code(err: Exception) -> str:
    return getattr(err, "response", {}).get("Error", {}).get("Code", type(err).__name__)


def http_status(err: Exception) -> int:
    return int(getattr(err, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def explain(err: Exception, permissions: str) -> tuple[str, str]:
    """(what happened, what to do) for a failed AWS call: a denial names the permissions; bad credentials say
    so; a 5xx or throttling answer is the service's problem and says to retry, never "missing permission"."""
    code, status = error_code(err), http_status(err)
    if status >= 500 or code in ("ServiceUnavailable", "InternalError", "InternalFailure", "Unavailable",
                                 "ServiceUnavailableException", "ServiceException", "RequestLimitExceeded",
                                 "Throttling", "ThrottlingException", "TooManyRequestsException"):
        return (f"AWS answered {status or ''} {code}".replace("  ", " ").strip(),
                f"the service failed or throttled the request (after {MAX_ATTEMPTS} attempts); retry in a "
                "minute, see the AWS Health Dashboard if it persists")
    if code in _BAD_CREDENTIALS:
        return code, "the AWS credentials were not accepted (expired or wrong account/partition): renew them " \
                     "(`aws sso login`, new session token) and check `aws sts get-caller-identity`"
    if code in _DENIED or code.endswith(("AccessDenied", "AccessDeniedException")):
        return code, f"allow {permissions} for this identity"
    return code, f"unexpected answer; the call needs {permissions}"


def unreachable(err: Exception) -> str:
    """One line for a call that got no answer (connect/read timeout, DNS, TLS) after the retries."""
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

    url = getattr(err, "kwargs", {}).get("endpoint_url", "the AWS endpoint")
    if isinstance(err, (ReadTimeoutError, ConnectTimeoutError)):
        return (f"{url} did not answer in time ({type(err).__name__}, {MAX_ATTEMPTS} attempts); check network "
                "access to AWS (proxy, VPC endpoint) or raise --request-timeout")
    if isinstance(err, EndpointConnectionError):
        return f"cannot connect to {url}: check the region and network access to AWS"
    return f"AWS call failed: {err}"
