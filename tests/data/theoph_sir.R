# Reference numbers for ctkinetics' SIR (issue 16), computed in R independently of it.
#
# Theoph, C(t) = Dose*ka*ke/(CL*(ka - ke))*(exp(-ke t) - exp(-ka t)) (SSfol = onecpt_oral),
# ka = exp(th_ka + eta1), CL = exp(th_CL + eta2), ke = exp(th_ke), eta ~ N(0, diag(w^2)),
# additive error sigma. The vector x = (th_ka, th_ke, th_CL, ln w_ka, ln w_CL, ln sigma) is
# ctkinetics' estimation vector. The objective is the FOCE-I (Laplace) -2LL written here from
# its definition: per subject the conditional mode of eta (optim, BFGS) of
#   h(eta) = sum((y - f)^2/s^2 + log(2 pi s^2)) + eta' W^-1 eta
# and -2LL_i = h(eta_hat) + log|W| + log|A|, A = J'J/s^2 + W^-1, J = df/deta (analytic).
#
# Writes tests/data/theoph_sir_r_ofv.csv: 40 vectors x (drawn from the proposal below) with
# R's -2LL at each, and tests/data/theoph_sir_r_ci.csv: the quantiles of the SIR target
# exp(-OFV/2) (flat prior on x) by importance sampling with N = 5,000 draws from
# N(x_hat, 1.5^2 Cov), Cov = 2 H^-1 at R's own optimum (effective sample size reported).
# Run from the repository root:  Rscript tests/data/theoph_sir.R
suppressMessages(library(MASS))
th <- read.csv("tests/data/theoph.csv")
subj <- split(th, th$Subject)

conc <- function(d, t, ka, ke, cl) d * ka * ke / (cl * (ka - ke)) * (exp(-ke * t) - exp(-ka * t))
dconc_dlka <- function(d, t, ka, ke, cl) {   # d f / d ln ka
  E <- exp(-ke * t) - exp(-ka * t)
  ka * d * ke / cl * (-ke / (ka - ke)^2 * E + ka / (ka - ke) * t * exp(-ka * t))
}

m2ll <- function(x) {
  w2 <- exp(2 * x[4:5]); s2 <- exp(2 * x[6]); ke <- exp(x[2])
  Winv <- diag(1 / w2)
  total <- 0
  for (d in subj) {
    y <- d$conc; t <- d$Time; D <- d$Dose[1]
    h <- function(e) {
      f <- conc(D, t, exp(x[1] + e[1]), ke, exp(x[3] + e[2]))
      sum((y - f)^2 / s2 + log(2 * pi * s2)) + sum(e^2 / w2)
    }
    o <- optim(c(0, 0), h, method = "BFGS", control = list(reltol = 1e-14, maxit = 500))
    e <- o$par; ka <- exp(x[1] + e[1]); cl <- exp(x[3] + e[2])
    f <- conc(D, t, ka, ke, cl)
    J <- cbind(dconc_dlka(D, t, ka, ke, cl), -f) / sqrt(s2)
    A <- crossprod(J) + Winv
    total <- total + o$value + sum(log(w2)) + as.numeric(determinant(A)$modulus)
  }
  total
}

start <- c(log(1.6), log(0.085), log(0.0395), 0.5 * log(0.43), 0.5 * log(0.028), log(0.7))
opt <- optim(start, m2ll, method = "BFGS", control = list(reltol = 1e-12, maxit = 1000))
xhat <- opt$par
H <- optimHess(xhat, m2ll)
Cov <- 2 * solve(H)
set.seed(20240517)
N <- 5000
X <- mvrnorm(N, xhat, 1.5^2 * Cov)
ofv <- apply(X, 1, m2ll)
dofv <- ofv - opt$value
P <- solve(1.5^2 * Cov)
logq <- -0.5 * rowSums((sweep(X, 2, xhat) %*% P) * sweep(X, 2, xhat))
lw <- -0.5 * dofv - logq
w <- exp(lw - max(lw)); w <- w / sum(w)
ess <- 1 / sum(w^2)
nat <- cbind(ka = exp(X[, 1]), ke = exp(X[, 2]), CL = exp(X[, 3]),
             omega2_ka = exp(2 * X[, 4]), omega2_CL = exp(2 * X[, 5]), sigma = exp(X[, 6]))
wq <- function(v, p) { o <- order(v); cw <- cumsum(w[o]); v[o][findInterval(p, cw) + 1] }
ci <- data.frame(parameter = colnames(nat),
                 estimate = c(exp(xhat[1:3]), exp(2 * xhat[4:5]), exp(xhat[6])),
                 q025 = apply(nat, 2, wq, p = 0.025), q50 = apply(nat, 2, wq, p = 0.5),
                 q975 = apply(nat, 2, wq, p = 0.975),
                 sd_log = sqrt(colSums(w * sweep(log(nat), 2, colSums(w * log(nat)))^2)),
                 ess = ess, ofv_hat = opt$value)
write.csv(ci, "tests/data/theoph_sir_r_ci.csv", row.names = FALSE)
out <- data.frame(X[1:40, ], ofv = ofv[1:40])
names(out) <- c("th_ka", "th_ke", "th_CL", "lnw_ka", "lnw_CL", "ln_sigma", "ofv")
write.csv(out, "tests/data/theoph_sir_r_ofv.csv", row.names = FALSE)
print(ci, digits = 6)
cat("x_hat", format(xhat, digits = 8), "\n-2LL", format(opt$value, digits = 10), "\n")
cat(R.version.string, "\n")
