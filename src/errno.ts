// Linux errno numbers by name (os.constants.errno), so the code says
// EAGAIN where the native layer returns -11.
import { constants } from 'node:os';

export const { EAGAIN, EBADF, ECHILD, ECONNRESET, EINVAL, ENOBUFS, EPIPE, EPROTO, ESRCH, ETIMEDOUT } = constants.errno;
