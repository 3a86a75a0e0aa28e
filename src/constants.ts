import { constants as fsConstants } from 'node:fs';
import { INFO_SIZE } from './abi';

/** Linux's O_CLOEXEC (0o2000000); `fs.constants` does not export it. */
export const O_CLOEXEC = 0o2000000;
/** Linux's O_NONBLOCK (0o4000), equal to `fs.constants.O_NONBLOCK`. */
export const O_NONBLOCK: number = fsConstants.O_NONBLOCK ?? 0o4000;

/** `clonefd_info.code`: the child exited; `status` is its exit code. */
export const CLD_EXITED = 1;
/** `clonefd_info.code`: a signal killed the child; `status` is the signal. */
export const CLD_KILLED = 2;
/** `clonefd_info.code`: a signal killed the child and it dumped core. */
export const CLD_DUMPED = 3;

/** Size of `struct clonefd_info` in bytes. */
export const CLONEFD_INFO_SIZE = INFO_SIZE;
